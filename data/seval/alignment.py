"""Recover and assert the base ↔ attack link of the official S-Eval files, by content.

The published attack file does not name the base prompt of each record. It is a run of
consecutive blocks, one per attack (``ext.category``), each block a permutation of the base
set in one shared ordering, and that ordering is *not* always the base file's own order (for
the zh small split it follows the en base file's order instead). Trusting row positions would
therefore silently pair attacks with the wrong base prompt; this module recovers the ordering
from content and refuses to return a link it cannot check.

How (all vectorised with numpy; one language at a time):

1. Block structure: consecutive runs of ``attack``; every attack name must form exactly one
   run and every run must have exactly as many rows as the base set.
2. Content matching: prompts are normalised (NFKC, lower case, only letters and digits kept;
   URL-encoded and Base64 payloads are decoded and appended, so encryption-style attacks
   can match when they encode the same-language text). Each base prompt is represented by
   its *rare* character k-grams (shared by few base prompts), and an attack row's score
   against a base prompt is the fraction of that base prompt's rare k-grams present in the
   row. Exact containment scores 1.0; light edits (appended instructions, swapped words)
   still score high; paraphrases and ciphers score low. A row is a *reliable* match when its
   best score is high and clearly above the second best (in-context attacks quote several
   base prompts and are therefore ambiguous, not wrong).
3. One shared ordering: every reliable match votes "block position p holds base b". All
   votes at a position must agree (across blocks); a dissenting vote is an error naming the
   block, attack and position. Positions no block matched reliably are filled from summed
   weaker evidence or by elimination within their risk type, and flagged as such.
4. Assertions: the ordering is a permutation of the base set, and every attack row's
   ``risk_type`` equals its base prompt's, in every block (this is the only check that
   covers blocks whose content cannot be matched, such as ciphers or paraphrases).

Any violation raises ``AlignmentError`` (an ``InputError``, so the CLI prints one line).
"""

from __future__ import annotations

import base64
import binascii
import re
import urllib.parse
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from trustflow.data.schemas import SEVAL_PROMPTS, VersionedSchema
from trustflow.errors import InputError


class AlignmentError(InputError):
    """The attack file is not a set of equal blocks over one ordering of the base prompts.

    Subclasses ``InputError`` (hence ``TrustflowError``): it is a defect of the input files,
    and callers that already handle malformed input handle this too.
    """


LINKED_BY_CONTENT = "content"  # this row's own text matched its base prompt reliably
LINKED_BY_ORDER = "order"  # other blocks matched this position by content; shared ordering applied
LINKED_BY_INFERENCE = "inference"  # no block matched this position reliably: summed weak evidence / elimination

SEVAL_ATTACK_LINKS = VersionedSchema(
    "seval_attack_links",
    1,
    pa.schema(
        list(SEVAL_PROMPTS.schema)
        + [
            pa.field("base_id", pa.string(), nullable=False),  # prompt_id of the base prompt
            pa.field("block_index", pa.int32(), nullable=False),  # 0-based block in the attack file
            pa.field("position", pa.int32(), nullable=False),  # 0-based row within the block
            pa.field("linked_by", pa.string(), nullable=False),  # content | order | inference
        ]
    ),
)


@dataclass(frozen=True)
class MatchConfig:
    """Tuning of the content matcher; the defaults were checked on the zh and en small splits.

    ``gram_size`` None picks 4 characters for CJK-heavy text (each character carries about a
    word's worth of identity) and 8 otherwise. A k-gram is *rare* when at most ``max_df``
    base prompts contain it: common k-grams ("how to ...") say nothing about which prompt a
    row came from, and a fixed cap (not a share of the base set) keeps the work per matched
    k-gram bounded on the large splits. Caps of 3-10 gave the same links on the small split.

    Thresholds, from the zh and en small splits: whenever a *wrong* base prompt scored best
    for a row, it scored at most 0.36, so 0.6 leaves a gap; wrong candidates can score 1.0
    only next to the right one (in-context attacks quote several base prompts), which the
    margin rule turns into "ambiguous" rather than a wrong link.
    """

    gram_size: int | None = None
    max_df: int = 8
    reliable_score: float = 0.6
    reliable_margin: float = 0.25
    content_block_fraction: float = 0.5  # a block is "content-matched" above this reliable share
    inference_min_score: float = 0.5  # summed score a position needs to be linked by inference
    chunk_chars: int = 4_000_000  # attack text hashed per step, to bound memory on large splits


@dataclass(frozen=True)
class BlockReport:
    """What content matching established for one attack block."""

    index: int
    attack: str
    start_row: int
    rows: int
    reliable: int  # rows whose own text matched a base prompt reliably
    content_matched: bool  # reliable / rows >= content_block_fraction


@dataclass(frozen=True)
class AlignmentReport:
    """Summary of a successful alignment: what was matched and how the ordering looks."""

    lang: str
    split: str
    n_base: int
    blocks: list[BlockReport]
    positions_by_content: int  # positions at least one block matched reliably
    positions_by_inference: int  # positions filled by summed evidence or elimination
    order_is_base_order: bool  # the shared ordering equals the base file's row order
    ordering: list[str] = field(repr=False)  # base prompt_id at each block position


@dataclass(frozen=True)
class Alignment:
    table: pa.Table  # attack rows (file order) with base_id, block_index, position, linked_by
    report: AlignmentReport


def align_attacks(base: pa.Table, attack: pa.Table, config: MatchConfig | None = None) -> pa.Table:
    """Attack rows of one language with ``base_id``/``block_index``/``position`` (and ``linked_by``).

    ``base`` and ``attack`` are ``seval_prompts`` tables (one language, one split). Raises
    ``AlignmentError`` if the link cannot be recovered and checked.
    """
    return recover_alignment(base, attack, config).table


def recover_alignment(base: pa.Table, attack: pa.Table, config: MatchConfig | None = None) -> Alignment:
    """Like ``align_attacks`` but also returns an ``AlignmentReport`` (for logs, docs, tests)."""
    cfg = config or MatchConfig()
    lang, split, base, attack = _check_inputs(base, attack)
    n = base.num_rows
    names = attack.column("attack").to_pylist()
    blocks = _blocks(names, n)
    n_blocks = len(blocks)

    base_ids = np.asarray(base.column("prompt_id").to_pylist(), dtype=object)
    base_risk = np.asarray(base.column("risk_type").to_pylist(), dtype=object)
    att_risk = np.asarray(attack.column("risk_type").to_pylist(), dtype=object).reshape(n_blocks, n)
    lines = np.asarray(attack.column("line_no").to_pylist(), dtype=np.int64).reshape(n_blocks, n)

    base_text = _normalise(base.column("prompt"), decode=False)
    att_text = _normalise(attack.column("prompt"), decode=True)
    k = cfg.gram_size or _auto_gram_size(base_text)
    rows, cands, scores = _ngram_scores(base_text, att_text, k, cfg)
    best, _, reliable = _best_matches(rows, cands, scores, attack.num_rows, cfg)

    best = best.reshape(n_blocks, n)
    reliable = reliable.reshape(n_blocks, n)
    _check_risk_types_agree_across_blocks(att_risk, blocks, lines)
    ordering = _vote(best, reliable, blocks, base_ids, lines)
    by_content = ordering >= 0
    if not by_content.all():
        _infer_missing(ordering, rows, cands, scores, att_risk[0], base_risk, n, cfg)
    _assert_permutation(ordering, base_ids, blocks)
    _assert_risk_types(ordering, att_risk, base_risk, base_ids, blocks, lines)

    linked_by = np.where(
        reliable & (best == ordering[None, :]),
        LINKED_BY_CONTENT,
        np.where(by_content[None, :], LINKED_BY_ORDER, LINKED_BY_INFERENCE),
    ).ravel()
    table = attack.select(SEVAL_PROMPTS.names).cast(SEVAL_PROMPTS.schema)
    table = (
        table.append_column(
            SEVAL_ATTACK_LINKS.schema.field("base_id"), pa.array(np.tile(base_ids[ordering], n_blocks), pa.string())
        )
        .append_column(
            SEVAL_ATTACK_LINKS.schema.field("block_index"), pa.array(np.repeat(np.arange(n_blocks), n), pa.int32())
        )
        .append_column(
            SEVAL_ATTACK_LINKS.schema.field("position"), pa.array(np.tile(np.arange(n), n_blocks), pa.int32())
        )
        .append_column(SEVAL_ATTACK_LINKS.schema.field("linked_by"), pa.array(linked_by, pa.string()))
    )
    reports = [
        BlockReport(
            i, name, start, n, int(reliable[i].sum()), bool(reliable[i].sum() >= cfg.content_block_fraction * n)
        )
        for i, (name, start) in enumerate(blocks)
    ]
    report = AlignmentReport(
        lang=lang,
        split=split,
        n_base=n,
        blocks=reports,
        positions_by_content=int(by_content.sum()),
        positions_by_inference=int((~by_content).sum()),
        order_is_base_order=bool((ordering == np.arange(n)).all()),
        ordering=base_ids[ordering].tolist(),
    )
    return Alignment(table=table, report=report)


# --- input structure -------------------------------------------------------------------------


def _check_inputs(base: pa.Table, attack: pa.Table) -> tuple[str, str, pa.Table, pa.Table]:
    """(lang, split, base rows, attack rows), both in file order; one base/attack pair only."""
    for what, table in (("base", base), ("attack", attack)):
        missing = [c for c in SEVAL_PROMPTS.names if c not in table.column_names]
        if missing:
            raise AlignmentError(f"{what} table lacks seval_prompts columns {missing}")
        if table.num_rows == 0:
            raise AlignmentError(f"{what} table is empty")
        for col in ("prompt_id", "risk_type", "prompt", "line_no"):
            if table.column(col).null_count:
                raise AlignmentError(f"{what} table has null values in {col!r}")
    sets = {("base", s) for s in pc.unique(base.column("set")).to_pylist()} | {
        ("attack", s) for s in pc.unique(attack.column("set")).to_pylist()
    }
    if sets != {("base", "base_risk"), ("attack", "attack")}:
        raise AlignmentError(
            f"expected base rows with set=base_risk and attack rows with set=attack, got {sorted(sets)}"
        )
    langs = set(pc.unique(base.column("lang")).to_pylist()) | set(pc.unique(attack.column("lang")).to_pylist())
    splits = set(pc.unique(base.column("split")).to_pylist()) | set(pc.unique(attack.column("split")).to_pylist())
    if len(langs) != 1 or len(splits) != 1:
        raise AlignmentError(
            f"align one language and split at a time; got languages {sorted(langs)} and splits {sorted(splits)}"
        )
    if pc.count_distinct(base.column("prompt_id")).as_py() != base.num_rows:
        raise AlignmentError("base prompt_ids are not unique")
    if attack.column("attack").null_count:
        raise AlignmentError("attack rows without an attack name (ext.category)")
    for what, table in (("base", base), ("attack", attack)):
        files = pc.unique(table.column("source_file")).to_pylist()
        if len(files) != 1:
            raise AlignmentError(f"{what} rows come from {len(files)} files {files}; align one file pair at a time")
    # Block structure lives in the file order; tables read back from the store may be reordered.
    return langs.pop(), splits.pop(), base.sort_by("line_no"), attack.sort_by("line_no")


def _blocks(names: list[str], n: int) -> list[tuple[str, int]]:
    """(attack name, first row) of each block; one run per attack, each exactly ``n`` rows."""
    runs: list[list] = []
    for i, name in enumerate(names):
        if not runs or runs[-1][0] != name:
            runs.append([name, i, 0])
        runs[-1][2] += 1
    seen: dict[str, int] = {}
    for idx, (name, start, length) in enumerate(runs):
        if name in seen:
            first = runs[seen[name]]
            raise AlignmentError(
                f"block {idx} (attack {name!r}, rows {start}-{start + length - 1}): attack {name!r} already formed "
                f"block {seen[name]} (rows {first[1]}-{first[1] + first[2] - 1}); the attack file must hold one "
                "consecutive block per attack (rows were moved between blocks?)"
            )
        seen[name] = idx
    for idx, (name, start, length) in enumerate(runs):
        if length != n:
            raise AlignmentError(
                f"block {idx} (attack {name!r}, rows {start}-{start + length - 1}) has {length} rows but the base set has "
                f"{n}: every block must be a permutation of the base prompts (row dropped or duplicated?)"
            )
    return [(name, start) for name, start, _ in runs]


# --- content matching ------------------------------------------------------------------------

_URL_ENCODED = re.compile(r"(?:%[0-9A-Fa-f]{2}){3,}")
_BASE64 = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}")
_CJK_START = 0x2E80


def _decoded_views(text: str) -> str:
    """Text plus decodings of URL-encoded and Base64 payloads it carries (encryption attacks)."""
    extra: list[str] = []
    if _URL_ENCODED.search(text):
        extra.append(urllib.parse.unquote(text))
    for token in _BASE64.findall(text):
        if len(token) % 4:
            continue
        try:
            extra.append(base64.b64decode(token, validate=True).decode("utf-8"))
        except (binascii.Error, UnicodeDecodeError, ValueError):
            continue
    return text if not extra else "\n".join([text, *extra])


def _normalise(prompts: pa.ChunkedArray, decode: bool) -> pa.Array:
    """NFKC, lower case, letters and digits only: formatting must not decide a match."""
    arr = prompts.combine_chunks()
    if decode:
        candidates = pc.or_(
            pc.match_substring_regex(arr, _URL_ENCODED.pattern), pc.match_substring_regex(arr, _BASE64.pattern)
        )
        idx = np.flatnonzero(candidates.to_numpy(zero_copy_only=False))
        if len(idx):
            values = arr.to_pylist()
            for i in idx:
                values[i] = _decoded_views(values[i])
            arr = pa.array(values, pa.string())
    arr = pc.utf8_normalize(arr, "NFKC")
    arr = pc.utf8_lower(arr)
    return pc.replace_substring_regex(arr, r"[^\p{L}\p{N}]+", "")


def _auto_gram_size(base_text: pa.Array) -> int:
    sample = "".join(base_text.to_pylist()[:2000])
    if not sample:
        return 8
    cps = np.frombuffer(sample.encode("utf-32-le"), dtype="<u4")
    return 4 if float((cps >= _CJK_START).mean()) > 0.3 else 8


def _codepoints(texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(all code points concatenated, end offset of each text) without per-row Python work."""
    lengths = pc.utf8_length(texts).to_numpy(zero_copy_only=False).astype(np.int64)
    joined = "".join(texts.to_pylist())
    cps = np.frombuffer(joined.encode("utf-32-le"), dtype="<u4")
    return cps, np.cumsum(lengths)


_HASH_MULT = np.uint64(0x100000001B3)  # FNV-64 prime: odd, mixes well under 2**64 wrap-around


def _gram_hashes(cps: np.ndarray, ends: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(hash, start position) of every k-gram that lies inside one text."""
    n_pos = len(cps) - k + 1
    if n_pos <= 0:
        return np.empty(0, np.uint64), np.empty(0, np.int64)
    wide = cps.astype(np.uint64)
    h = wide[:n_pos].copy()
    for j in range(1, k):
        h *= _HASH_MULT
        h += wide[j : j + n_pos]
    valid = np.ones(n_pos, dtype=bool)
    crossing = (ends[:, None] - np.arange(1, k)[None, :]).ravel()  # starts whose gram runs past a text end
    crossing = crossing[(crossing >= 0) & (crossing < n_pos)]
    valid[crossing] = False
    pos = np.flatnonzero(valid)
    return h[pos], pos


def _ngram_scores(
    base_text: pa.Array, att_text: pa.Array, k: int, cfg: MatchConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sparse (attack row, base row, score): share of the base prompt's rare k-grams in the row."""
    n_base = len(base_text)
    cps, ends = _codepoints(base_text)
    h, pos = _gram_hashes(cps, ends, k)
    brow = np.searchsorted(ends, pos, side="right")
    order = np.lexsort((brow, h))
    h, brow = h[order], brow[order]
    once = np.ones(len(h), dtype=bool)
    once[1:] = (h[1:] != h[:-1]) | (brow[1:] != brow[:-1])
    h, brow = h[once], brow[once]  # one (gram, base) pair each, sorted by gram
    grams, first, df = np.unique(h, return_index=True, return_counts=True)
    rare = df <= cfg.max_df
    grams, first, df = grams[rare], first[rare], df[rare]
    if len(grams) == 0:  # nothing distinctive to match on: every position goes to inference
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float64)
    postings_base = brow.astype(np.int64)  # sorted by gram: postings of gram g at first[g]:first[g]+df[g]
    n_rare = np.zeros(n_base, dtype=np.int64)
    np.add.at(n_rare, postings_base[np.repeat(first, df) + _ranges(df)], 1)

    bits = 22
    bitmap = np.zeros(1 << bits, dtype=bool)  # cheap pre-filter before the exact lookup
    bitmap[(grams >> np.uint64(64 - bits)).astype(np.int64)] = True

    out_rows: list[np.ndarray] = [np.empty(0, np.int64)]
    out_base: list[np.ndarray] = [np.empty(0, np.int64)]
    out_score: list[np.ndarray] = [np.empty(0, np.float64)]
    all_lengths = pc.utf8_length(att_text).to_numpy(zero_copy_only=False).astype(np.int64)
    for lo, hi in _row_chunks(all_lengths, cfg.chunk_chars):
        chunk = att_text.slice(lo, hi - lo)
        cps, ends = _codepoints(chunk)
        h, pos = _gram_hashes(cps, ends, k)
        keep = bitmap[(h >> np.uint64(64 - bits)).astype(np.int64)]
        h, pos = h[keep], pos[keep]
        gi = np.searchsorted(grams, h)
        gi[gi == len(grams)] = 0
        hit = grams[gi] == h
        gi, pos = gi[hit], pos[hit]
        arow = np.searchsorted(ends, pos, side="right")
        row_gram = _sorted_unique(arow.astype(np.int64) * len(grams) + gi)  # each gram once per row
        arow, gi = row_gram // len(grams), row_gram % len(grams)
        reps = df[gi]
        pa_rows = np.repeat(arow, reps)
        pb = postings_base[np.repeat(first[gi], reps) + _ranges(reps)]
        key, counts = _sorted_unique(pa_rows * n_base + pb, counts=True)
        out_rows.append(key // n_base + lo)
        out_base.append(key % n_base)
        out_score.append(counts / np.maximum(n_rare[key % n_base], 1))
    return np.concatenate(out_rows), np.concatenate(out_base), np.concatenate(out_score)


def _sorted_unique(values: np.ndarray, counts: bool = False):  # noqa: ANN202
    """np.unique by sorting: on these int64 keys it is several times faster than numpy's hash path."""
    values = np.sort(values)
    first = np.ones(len(values), dtype=bool)
    first[1:] = values[1:] != values[:-1]
    uniq = values[first]
    if not counts:
        return uniq
    return uniq, np.diff(np.append(np.flatnonzero(first), len(values)))


def _ranges(lengths: np.ndarray) -> np.ndarray:
    """concat(arange(l) for l in lengths), vectorised."""
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, np.int64)
    starts = np.cumsum(lengths) - lengths
    return np.arange(total, dtype=np.int64) - np.repeat(starts, lengths)


def _row_chunks(lengths: np.ndarray, budget: int) -> list[tuple[int, int]]:
    chunks, lo, acc = [], 0, 0
    for i, length in enumerate(lengths.tolist()):
        if acc and acc + length > budget:
            chunks.append((lo, i))
            lo, acc = i, 0
        acc += length
    chunks.append((lo, len(lengths)))
    return chunks


def _best_matches(
    rows: np.ndarray, cands: np.ndarray, scores: np.ndarray, n_rows: int, cfg: MatchConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(best base or -1, best score, reliable?) per attack row."""
    best = np.full(n_rows, -1, dtype=np.int64)
    best_score = np.zeros(n_rows)
    second = np.zeros(n_rows)
    if len(rows):
        order = np.lexsort((-scores, rows))
        r, c, s = rows[order], cands[order], scores[order]
        first = np.ones(len(r), dtype=bool)
        first[1:] = r[1:] != r[:-1]
        best[r[first]] = c[first]
        best_score[r[first]] = s[first]
        is_second = np.zeros(len(r), dtype=bool)
        is_second[1:] = first[:-1] & ~first[1:]
        second[r[is_second]] = s[is_second]
    reliable = (best >= 0) & (best_score >= cfg.reliable_score) & (best_score - second >= cfg.reliable_margin)
    return best, best_score, reliable


# --- the shared ordering and its checks ------------------------------------------------------


def _where(blocks: list[tuple[str, int]], b: int, p: int, lines: np.ndarray) -> str:
    return f"block {b} (attack {blocks[b][0]!r}), position {p} (line {int(lines[b, p])})"


def _check_risk_types_agree_across_blocks(
    att_risk: np.ndarray, blocks: list[tuple[str, int]], lines: np.ndarray
) -> None:
    """Position p holds the same base prompt in every block, so the same risk_type."""
    n_blocks, n = att_risk.shape
    for p in np.flatnonzero((att_risk != att_risk[0:1, :]).any(axis=0))[:1]:
        values, counts = np.unique(att_risk[:, p].astype(str), return_counts=True)
        majority = values[np.argmax(counts)]
        odd = [b for b in range(n_blocks) if att_risk[b, p] != majority]
        raise AlignmentError(
            f"{_where(blocks, odd[0], int(p), lines)}: risk_type {att_risk[odd[0], p]!r} but {counts.max()} of "
            f"{n_blocks} blocks have {str(majority)!r} at this position: the blocks do not share one ordering"
        )


def _vote(
    best: np.ndarray, reliable: np.ndarray, blocks: list[tuple[str, int]], base_ids: np.ndarray, lines: np.ndarray
) -> np.ndarray:
    """Base row at each position from the reliable matches of all blocks (-1: no reliable match)."""
    n_blocks, n = best.shape
    b_idx, p_idx = np.nonzero(reliable)
    votes = best[b_idx, p_idx]
    key, counts = np.unique(p_idx * len(base_ids) + votes, return_counts=True)
    pos, cand = key // len(base_ids), key % len(base_ids)
    ordering = np.full(n, -1, dtype=np.int64)
    # strongest candidate per position: sort by (position, -count)
    order = np.lexsort((-counts, pos))
    pos, cand, counts = pos[order], cand[order], counts[order]
    first = np.ones(len(pos), dtype=bool)
    first[1:] = pos[1:] != pos[:-1]
    ordering[pos[first]] = cand[first]
    if (~first).any():  # some position got two different bases: name the outvoted block(s)
        p = int(pos[~first][0])
        winner, top = int(ordering[p]), int(counts[first][np.searchsorted(pos[first], p)])
        dissent = [int(b) for b, q in zip(b_idx, p_idx, strict=True) if q == p and best[b, q] != winner]
        b = dissent[0]
        raise AlignmentError(
            f"{_where(blocks, b, p, lines)}: content matches base {base_ids[best[b, p]]} but {top} other block(s) "
            f"match base {base_ids[winner]} at this position: the blocks do not share one ordering "
            f"(dissenting blocks: {sorted(set(dissent))})"
        )
    return ordering


def _infer_missing(
    ordering: np.ndarray,
    rows: np.ndarray,
    cands: np.ndarray,
    scores: np.ndarray,
    pos_risk: np.ndarray,
    base_risk: np.ndarray,
    n: int,
    cfg: MatchConfig,
) -> None:
    """Fill positions no block matched reliably, in place, from weaker evidence or elimination.

    Evidence for (position, base) is the sum of that base's scores over the position's rows in
    all blocks. A position is linked when its best unassigned candidate of the same risk type
    has enough summed evidence, clearly beats the runner-up, and prefers it back; or when it
    is the only unlinked position of its risk type with one unassigned base left.
    """
    used = np.zeros(n, dtype=bool)
    used[ordering[ordering >= 0]] = True
    pos = rows % n
    keep = (ordering[pos] < 0) & ~used[cands] & (pos_risk[pos] == base_risk[cands])
    summed: dict[tuple[int, int], float] = {}
    for p, b, s in zip(pos[keep].tolist(), cands[keep].tolist(), scores[keep].tolist(), strict=True):
        summed[(p, b)] = summed.get((p, b), 0.0) + s
    progress = True
    while progress and (ordering < 0).any():
        progress = False
        best_for_pos: dict[int, tuple[float, int, float]] = {}
        best_for_base: dict[int, tuple[float, int]] = {}
        for (p, b), s in summed.items():
            if ordering[p] >= 0 or used[b]:
                continue
            top, arg, runner = best_for_pos.get(p, (0.0, -1, 0.0))
            best_for_pos[p] = (s, b, top) if s > top else (top, arg, max(runner, s))
            if s > best_for_base.get(b, (0.0, -1))[0]:
                best_for_base[b] = (s, p)
        for p, (top, b, runner) in best_for_pos.items():
            if top >= cfg.inference_min_score and top - runner >= cfg.reliable_margin and best_for_base[b][1] == p:
                ordering[p], used[b], progress = b, True, True
        for risk in np.unique(pos_risk[ordering < 0].astype(str)):
            open_pos = np.flatnonzero((ordering < 0) & (pos_risk == risk))
            free = np.flatnonzero(~used & (base_risk == risk))
            if len(open_pos) == 1 and len(free) == 1:
                ordering[open_pos[0]], used[free[0]], progress = free[0], True, True
    if (ordering < 0).any():
        missing = np.flatnonzero(ordering < 0)
        raise AlignmentError(
            f"{len(missing)} block position(s) could not be linked to a base prompt: no block matches them by "
            f"content and elimination by risk type is ambiguous (positions {missing[:10].tolist()}"
            f"{' ...' if len(missing) > 10 else ''})"
        )


def _assert_permutation(ordering: np.ndarray, base_ids: np.ndarray, blocks: list[tuple[str, int]]) -> None:
    counts = np.bincount(ordering, minlength=len(base_ids))
    if (counts > 1).any():
        b = int(np.flatnonzero(counts > 1)[0])
        where = np.flatnonzero(ordering == b).tolist()
        raise AlignmentError(
            f"base {base_ids[b]} is matched at block positions {where}: the blocks are not a permutation of the "
            f"base set ({len(blocks)} blocks; a duplicated row?)"
        )
    if (counts == 0).any():
        b = int(np.flatnonzero(counts == 0)[0])
        raise AlignmentError(
            f"base {base_ids[b]} has no attack row in any block: the blocks are not a permutation of the base set"
        )


def _assert_risk_types(
    ordering: np.ndarray,
    att_risk: np.ndarray,
    base_risk: np.ndarray,
    base_ids: np.ndarray,
    blocks: list[tuple[str, int]],
    lines: np.ndarray,
) -> None:
    expected = base_risk[ordering]
    bad = np.argwhere(att_risk != expected[None, :])
    if len(bad):
        b, p = (int(x) for x in bad[0])
        raise AlignmentError(
            f"{_where(blocks, b, p, lines)}: risk_type {att_risk[b, p]!r} but its base {base_ids[ordering[p]]} is "
            f"{expected[p]!r} ({len(bad)} such rows)"
        )
