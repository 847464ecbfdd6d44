"""Deduplication: near-duplicates by embedding cosine, exact-ish copies by MinHash.

Why both: generator LLMs repeat themselves in two ways. Paraphrases ("How do I pick a lock?"
/ "What's the way to pick a lock?") only show up in embedding space, so ``near_dedup``
compares sentence embeddings. Copies with a changed number or punctuation show up in surface
text and are far cheaper to catch with MinHash LSH over character shingles, which needs no
model at all; ``minhash_dedup`` runs well before the embedding stages on large pools.

Both are greedy and order-aware: candidates are visited by priority (hardest first when a
``hardness`` column is present, else input order) and a candidate is dropped only if it
duplicates a row already *kept*. Comparing with kept rows only, not with dropped ones,
avoids chains (A~B, B~C, but A and C distinct: C survives). By default both compare within
one language: S-Eval ships each prompt in zh and en on purpose, and a good multilingual model
puts a prompt and its translation close together.
"""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from trustflow.errors import ConfigError
from trustflow.tasks.seval.selection.base import (
    SELECTORS,
    SelectionContext,
    SelectionResult,
    Strategy,
    StrategyOptions,
    groups,
    has_hardness,
    priority_order,
)

# Brute-force similarity blocks hold at most this many float32 scores (64 MiB).
_BLOCK_CELLS = 1 << 24


def _snippet(text: str, n: int = 40) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _use_hardness(prefer: str, df: pd.DataFrame, strategy: str) -> bool:
    if prefer == "hardest" and not has_hardness(df):
        raise ConfigError(f"selection strategy {strategy!r}: prefer='hardest' needs a 'hardness' column with values")
    return prefer == "hardest" or (prefer == "auto" and has_hardness(df))


# --- similarity search -------------------------------------------------------------------------


def exact_pairs(x: np.ndarray, y: np.ndarray, threshold: float, same: bool) -> tuple[np.ndarray, np.ndarray]:
    """All (i, j) with ``x[i] · y[j] >= threshold`` by blocked matrix multiply (``i != j`` if same)."""
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    if len(x) == 0 or len(y) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    block = max(1, min(len(x), _BLOCK_CELLS // len(y)))
    for s in range(0, len(x), block):
        e = min(s + block, len(x))
        sims = x[s:e] @ y.T
        if same:
            sims[np.arange(e - s), np.arange(s, e)] = -np.inf
        r, c = np.nonzero(sims >= threshold)
        rows.append(r + s)
        cols.append(c)
    return np.concatenate(rows).astype(np.int64), np.concatenate(cols).astype(np.int64)


def ann_pairs(
    x: np.ndarray, y: np.ndarray, threshold: float, same: bool, k: int, index: str, nprobe: int
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate (i, j) among each ``x[i]``'s ``k`` approximate nearest ``y`` (faiss, inner product).

    The index is built single-threaded: HNSW insertion order under OpenMP varies between runs,
    and a suite builder must be deterministic. Searching is per query and stays parallel.
    """
    import faiss

    if len(x) == 0 or len(y) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    x = np.ascontiguousarray(x, dtype=np.float32)
    y = np.ascontiguousarray(y, dtype=np.float32)
    d = y.shape[1]
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        if index == "hnsw":
            idx: Any = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
            idx.hnsw.efConstruction = 80
            idx.hnsw.efSearch = max(64, 2 * k)
        else:
            nlist = max(1, min(int(math.sqrt(len(y))), len(y) // 39))
            quantizer = faiss.IndexFlatIP(d)
            idx = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
            idx.cp.seed = 1234
            idx.train(y)
            idx.nprobe = min(nlist, nprobe)
        idx.add(y)
    finally:
        faiss.omp_set_num_threads(threads)
    kk = min(len(y), k + (1 if same else 0))
    scores, ids = idx.search(x, kk)
    r = np.repeat(np.arange(len(x)), kk)
    c = ids.reshape(-1).astype(np.int64)
    ok = (c >= 0) & (scores.reshape(-1) >= threshold - 1e-3)  # slack; exact re-scoring decides
    if same:
        ok &= c != r
    return r[ok], c[ok]


def _rescore(x: np.ndarray, y: np.ndarray, r: np.ndarray, c: np.ndarray, threshold: float):
    """Exact cosine of candidate pairs (same arithmetic for both search paths, so they agree).

    Chunked: gathering ``x[r]`` and ``y[c]`` for all pairs at once holds two (pairs x dim)
    float32 copies, 8 GB for the ~2M pairs of an 11k-row group full of attack prompts that
    share a template (benchmarks/near_dedup_scale.py).
    """
    sims = np.zeros(len(r), np.float32)
    step = max(1, _BLOCK_CELLS // (2 * max(1, x.shape[1])))
    for s in range(0, len(r), step):
        sims[s : s + step] = np.einsum("ij,ij->i", x[r[s : s + step]], y[c[s : s + step]])
    ok = sims >= threshold
    return r[ok], c[ok], sims[ok]


def neighbour_pairs(
    x: np.ndarray, y: np.ndarray | None, threshold: float, *, ann: bool, k: int, index: str, nprobe: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, cosine) with cosine >= threshold; ``y=None`` means x against itself (symmetrised)."""
    same = y is None
    target = x if y is None else y
    if ann:
        r, c = ann_pairs(x, target, threshold, same, k, index, nprobe)
    else:
        r, c = exact_pairs(x, target, threshold, same)
    r, c, s = _rescore(x, target, r, c, threshold)
    if same:  # ANN may find i->j but not j->i; make the relation symmetric, then unique
        r, c, s = np.concatenate([r, c]), np.concatenate([c, r]), np.concatenate([s, s])
        key = np.unique(np.stack([r, c], axis=1), axis=0, return_index=True)[1]
        r, c, s = r[key], c[key], s[key]
    return r, c, s


# --- near_dedup -------------------------------------------------------------------------------


class NearDedupOptions(StrategyOptions):
    threshold: float = Field(0.92, gt=0.0, le=1.0)  # cosine at or above which two prompts are duplicates
    scope: Literal["lang", "all"] = "lang"  # compare within each language, or across all rows
    prefer: Literal["auto", "first", "hardest"] = "auto"  # auto: hardest if a hardness column exists
    against_reference: bool = True  # also drop duplicates of ctx.reference_prompts
    ann_above: int = Field(20000, ge=0)  # groups with at least this many rows use a faiss index
    ann_index: Literal["hnsw", "ivf"] = "hnsw"
    k: int = Field(10, ge=1)  # neighbours per row looked at on the ANN path
    nprobe: int = Field(16, ge=1)  # IVF lists probed per query


@SELECTORS.register("near_dedup")
class NearDedup(Strategy):
    """Drop prompts whose embedding cosine to a kept prompt (or a reference prompt) is too high."""

    Options = NearDedupOptions
    options: NearDedupOptions

    def select(self, df: pd.DataFrame, ctx: SelectionContext) -> SelectionResult:
        cfg = self.options
        t = cfg.threshold
        use_h = _use_hardness(cfg.prefer, df, self.name)
        search: dict[str, Any] = dict(k=cfg.k, index=cfg.ann_index, nprobe=cfg.nprobe)
        emb = ctx.embed(df["prompt"].tolist(), kind="query")
        uids = df["prompt_uid"].astype(str).tolist()
        reasons: dict[int, str] = {}

        refs = list(dict.fromkeys(ctx.reference_prompts)) if cfg.against_reference else []
        if refs and len(df):
            ref_emb = ctx.embed(refs, kind="query")
            r, c, s = neighbour_pairs(emb, ref_emb, t, ann=len(refs) >= cfg.ann_above, **search)
            best: dict[int, tuple[float, int]] = {}
            for i, j, sim in zip(r.tolist(), c.tolist(), s.tolist(), strict=True):
                if i not in best or (sim, -j) > (best[i][0], -best[i][1]):
                    best[i] = (sim, j)
            for i, (sim, j) in best.items():
                reasons[i] = f"near-duplicate of reference prompt #{j} {_snippet(refs[j])!r} (cosine {sim:.3f} ≥ {t:g})"

        keys = ["lang"] if cfg.scope == "lang" else []
        for _, pos in groups(df, keys) if keys else [((), np.arange(len(df)))]:
            if len(pos) < 2:
                continue
            r, c, s = neighbour_pairs(emb[pos], None, t, ann=len(pos) >= cfg.ann_above, **search)
            nbrs: dict[int, list[tuple[float, int]]] = {}
            for i, j, sim in zip(r.tolist(), c.tolist(), s.tolist(), strict=True):
                nbrs.setdefault(i, []).append((sim, j))
            kept_local = np.zeros(len(pos), dtype=bool)
            for i in priority_order(df.iloc[pos], use_h).tolist():
                if int(pos[i]) in reasons:
                    continue
                hits = [(sim, -j) for sim, j in nbrs.get(i, []) if kept_local[j]]
                if hits:
                    sim, neg_j = max(hits)
                    reasons[int(pos[i])] = f"near-duplicate of {uids[pos[-neg_j]]} (cosine {sim:.3f} ≥ {t:g})"
                else:
                    kept_local[i] = True
        return self.split(df, reasons)


# --- minhash_dedup ----------------------------------------------------------------------------

_WS = re.compile(r"\s+")


def shingles(text: str, size: int) -> set[str]:
    """Character ``size``-grams of the NFKC-normalised, lower-cased, space-collapsed text."""
    norm = _WS.sub(" ", unicodedata.normalize("NFKC", str(text)).lower()).strip()
    if len(norm) <= size:
        return {norm}
    return {norm[i : i + size] for i in range(len(norm) - size + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if (a or b) else 1.0


class MinHashDedupOptions(StrategyOptions):
    threshold: float = Field(0.8, gt=0.0, le=1.0)  # shingle Jaccard at or above which texts are copies
    shingle: int = Field(5, ge=1)  # characters per shingle
    num_perm: int = Field(128, ge=16)
    seed: int = 1
    scope: Literal["lang", "all"] = "lang"
    prefer: Literal["auto", "first", "hardest"] = "auto"
    against_reference: bool = True


@SELECTORS.register("minhash_dedup")
class MinHashDedup(Strategy):
    """Drop exact-ish copies: MinHash LSH proposes candidates, exact shingle Jaccard decides.

    The LSH band threshold sits 0.1 below ``threshold`` so that borderline pairs become
    candidates; verifying them with the exact Jaccard keeps the estimate's noise out of the
    decision (and out of the reason text).
    """

    Options = MinHashDedupOptions
    options: MinHashDedupOptions

    def select(self, df: pd.DataFrame, ctx: SelectionContext) -> SelectionResult:
        from datasketch import MinHash, MinHashLSH

        cfg = self.options
        t = cfg.threshold
        use_h = _use_hardness(cfg.prefer, df, self.name)
        lsh_t = max(0.05, t - 0.1)

        def sketch(sh: set[str]) -> MinHash:
            m = MinHash(num_perm=cfg.num_perm, seed=cfg.seed)
            m.update_batch([s.encode("utf-8") for s in sorted(sh)])
            return m

        row_sh = [shingles(p, cfg.shingle) for p in df["prompt"].tolist()]
        row_mh = [sketch(sh) for sh in row_sh]
        uids = df["prompt_uid"].astype(str).tolist()
        reasons: dict[int, str] = {}

        refs = list(dict.fromkeys(ctx.reference_prompts)) if cfg.against_reference else []
        if refs and len(df):
            ref_sh = [shingles(r, cfg.shingle) for r in refs]
            ref_lsh = MinHashLSH(threshold=lsh_t, num_perm=cfg.num_perm)
            for j, sh in enumerate(ref_sh):
                ref_lsh.insert(j, sketch(sh))
            for i, mh in enumerate(row_mh):
                hits = sorted(((jaccard(row_sh[i], ref_sh[j]), -j) for j in ref_lsh.query(mh)), reverse=True)
                if hits and hits[0][0] >= t:
                    jac, neg_j = hits[0]
                    reasons[i] = (
                        f"near-exact copy of reference prompt #{-neg_j} {_snippet(refs[-neg_j])!r} "
                        f"({cfg.shingle}-gram Jaccard {jac:.3f} ≥ {t:g})"
                    )

        keys = ["lang"] if cfg.scope == "lang" else []
        for _, pos in groups(df, keys) if keys else [((), np.arange(len(df)))]:
            lsh = MinHashLSH(threshold=lsh_t, num_perm=cfg.num_perm)
            for i in priority_order(df.iloc[pos], use_h).tolist():
                p = int(pos[i])
                if p in reasons:
                    continue
                hits = sorted(((jaccard(row_sh[p], row_sh[q]), -q) for q in lsh.query(row_mh[p])), reverse=True)
                if hits and hits[0][0] >= t:
                    jac, neg_q = hits[0]
                    reasons[p] = f"near-exact copy of {uids[-neg_q]} ({cfg.shingle}-gram Jaccard {jac:.3f} ≥ {t:g})"
                else:
                    lsh.insert(p, row_mh[p])
        return self.split(df, reasons)
