"""Base ↔ attack link of the official S-Eval files (real small split) and its failure modes.

The synthetic tables below use invented pseudo-words, never S-Eval prompts; the real prompts
are read from ../shared through the ``seval_small`` fixture.
"""

from __future__ import annotations

import base64
import json
import random
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from trustflow.data.loaders.seval import describe, find_seval_files, read_seval_file
from trustflow.data.schemas import SEVAL_PROMPTS
from trustflow.data.seval.alignment import (
    LINKED_BY_CONTENT,
    LINKED_BY_INFERENCE,
    AlignmentError,
    align_attacks,
    recover_alignment,
)
from trustflow.data.seval.hf_loading import HubUnavailable, load_seval_file_hf, load_seval_hub
from trustflow.errors import InputError

# --- the real small split --------------------------------------------------------------------


@pytest.fixture(scope="module")
def real(seval_small: Path) -> dict[tuple[str, str], pa.Table]:
    return {(f.set, f.lang): read_seval_file(f) for f in find_seval_files(seval_small)}


@pytest.fixture(scope="module")
def real_alignments(real) -> dict:
    out = {}
    for lang in ("zh", "en"):
        start = time.perf_counter()
        out[lang] = recover_alignment(real["base_risk", lang], real["attack", lang])
        out[lang + "_seconds"] = time.perf_counter() - start
    return out


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_real_split_links_every_attack_row(real, real_alignments, lang: str) -> None:
    base, attack = real["base_risk", lang], real["attack", lang]
    alignment = real_alignments[lang]
    table = alignment.table
    n = base.num_rows
    assert table.num_rows == attack.num_rows == 10 * n
    assert table.column("base_id").null_count == 0
    # same rows as the input, in file order
    assert table.column("prompt_id").to_pylist() == attack.sort_by("line_no").column("prompt_id").to_pylist()
    base_ids = set(base.column("prompt_id").to_pylist())
    base_risk = dict(zip(base.column("prompt_id").to_pylist(), base.column("risk_type").to_pylist(), strict=True))
    blocks = table.column("block_index").to_numpy()
    assert sorted(set(blocks.tolist())) == list(range(10))
    for b in range(10):
        rows = table.filter(pc.equal(table.column("block_index"), b))
        linked = rows.column("base_id").to_pylist()
        assert rows.num_rows == n and sorted(linked) == sorted(base_ids), f"block {b} is not a permutation"
        assert rows.column("position").to_pylist() == list(range(n))
        assert len(set(rows.column("attack").to_pylist())) == 1
        assert rows.column("risk_type").to_pylist() == [base_risk[i] for i in linked]
    # every position holds the same base prompt in every block
    per_block = np.asarray(table.column("base_id").to_pylist(), dtype=object).reshape(10, n)
    assert (per_block == per_block[0]).all()
    report = alignment.report
    assert report.positions_by_inference == 0 and report.positions_by_content == n
    assert sum(b.content_matched for b in report.blocks) >= 5
    assert (pc.equal(table.column("linked_by"), LINKED_BY_CONTENT)).to_numpy(zero_copy_only=False).mean() > 0.5


def test_real_split_orderings(real, real_alignments) -> None:
    """What the format notes warn about: zh blocks are not in zh base-file order; en ones are.

    Independent check: the zh blocks follow the *en* base file's order, whose records name
    their zh original in ``ext.from_traceid`` — a link the content matcher never looked at.
    """
    zh, en = real_alignments["zh"].report, real_alignments["en"].report
    assert not zh.order_is_base_order
    assert en.order_is_base_order
    assert zh.ordering == real["base_risk", "en"].column("from_traceid").to_pylist()


def test_real_split_is_fast(real_alignments) -> None:
    # budget is < 5 s per language on 2 cores; the margin absorbs a loaded CI machine
    assert real_alignments["zh_seconds"] < 10 and real_alignments["en_seconds"] < 10


def test_real_shuffled_block_is_named(real) -> None:
    base, attack = real["base_risk", "zh"], real["attack", "zh"].sort_by("line_no")
    n = base.num_rows
    order = np.arange(attack.num_rows)
    order[3 * n : 3 * n + 10] = order[3 * n : 3 * n + 10][::-1]  # reverse 10 rows of block 3
    shuffled = _with_line_numbers(attack.take(order))
    with pytest.raises(AlignmentError, match=r"block 3 \(attack 'instruction_jailbreak'\), position \d"):
        align_attacks(base, shuffled)


# --- synthetic tables ------------------------------------------------------------------------

RISK_TYPES = [
    "Crimes_and_Illegal_Activities",
    "Cybersecurity",
    "Data_Privacy",
    "Ethics_and_Morality",
    "Physical_and_Mental_Health",
    "Hate_Speech",
    "Extremism",
    "Inappropriate_Suggestions",
]
SYLLABLES = ["ka", "lo", "mi", "ner", "su", "tav", "qui", "bre", "dol", "fen", "gor", "hul", "jex", "pim", "ros", "zut"]


def _words(rng: random.Random, count: int) -> list[str]:
    return ["".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))) for _ in range(count)]


def _rows(prompts: list[str], risks: list[str], set_: str, attacks: list[str | None], source: str) -> pa.Table:
    n = len(prompts)
    ext = [json.dumps({"model": set_, **({"category": a} if a else {})}) for a in attacks]
    return pa.table(
        {
            "prompt_id": [f"{source[:4]}-{i:05d}" for i in range(n)],
            "lang": ["en"] * n,
            "set": [set_] * n,
            "split": ["synthetic"] * n,
            "risk_type": risks,
            "prompt": prompts,
            "attack": attacks,
            "from_traceid": [None] * n,
            "ext": ext,
            "source_file": [source] * n,
            "line_no": list(range(1, n + 1)),
        },
        schema=SEVAL_PROMPTS.schema,
    )


def _with_line_numbers(table: pa.Table) -> pa.Table:
    """Renumber lines after reordering rows, as if the edited file had been read."""
    idx = table.schema.get_field_index("line_no")
    return table.set_column(
        idx, SEVAL_PROMPTS.schema.field("line_no"), pa.array(range(1, table.num_rows + 1), pa.int32())
    )


ATTACKS = ["wrap", "suffix", "edit", "b64", "para"]


def make_synthetic(n: int = 40, seed: int = 7) -> tuple[pa.Table, pa.Table, list[int]]:
    """A base set and an attack file of 5 blocks over one shuffled ordering.

    wrap/suffix contain the base text verbatim, edit is a near-copy (two words swapped, an
    instruction appended), b64 carries it Base64-encoded, para is unrelated text (like a paraphrase or a
    cipher the matcher cannot read): only the risk_type check covers that block.
    """
    rng = random.Random(seed)
    base_prompts = [" ".join(_words(rng, rng.randint(12, 18))) + "?" for _ in range(n)]
    base_risks = [RISK_TYPES[i % len(RISK_TYPES)] for i in range(n)]
    ordering = list(range(n))
    rng.shuffle(ordering)
    prompts: list[str] = []
    for attack in ATTACKS:
        for b in ordering:
            text = base_prompts[b]
            words = text.split()
            if attack == "wrap":
                prompts.append(f"Imagine a story where a character asks: {text} Tell it in detail.")
            elif attack == "suffix":
                prompts.append(f"{text} Start your answer with 'Sure, here is'.")
            elif attack == "edit":
                words[5], words[6] = words[6], words[5]
                prompts.append(" ".join(words) + " Answer as a teacher would.")
            elif attack == "b64":
                prompts.append("Decode and answer: " + base64.b64encode(text.encode()).decode())
            else:
                prompts.append(" ".join(_words(rng, 20)))
    risks = [base_risks[b] for _ in ATTACKS for b in ordering]
    names = [a for a in ATTACKS for _ in ordering]
    base = _rows(base_prompts, base_risks, "base_risk", [None] * n, "S-Eval_base_risk_en_synthetic.jsonl")
    attack = _rows(prompts, risks, "attack", names, "S-Eval_attack_en_synthetic.jsonl")
    return base, attack, ordering


def _positions(attack: pa.Table, n: int, same_risk: bool) -> tuple[int, int]:
    """Two block positions whose rows have the same (or different) risk types."""
    risks = attack.column("risk_type").to_pylist()[:n]
    for j in range(2, n):
        if (risks[j] == risks[1]) == same_risk:
            return 1, j
    raise AssertionError("synthetic set too small")


def _swap(table: pa.Table, i: int, j: int, columns: tuple[str, ...] | None = None) -> pa.Table:
    """Swap rows i and j (all columns but line_no, or only ``columns``)."""
    cols = columns or tuple(c for c in table.column_names if c != "line_no")
    for name in cols:
        values = table.column(name).to_pylist()
        values[i], values[j] = values[j], values[i]
        table = table.set_column(
            table.schema.get_field_index(name),
            table.schema.field(name),
            pa.array(values, table.schema.field(name).type),
        )
    return table


def test_synthetic_ordering_is_recovered() -> None:
    base, attack, ordering = make_synthetic()
    alignment = recover_alignment(base, attack)
    n = base.num_rows
    expected = [base.column("prompt_id")[b].as_py() for b in ordering]
    assert alignment.report.ordering == expected and not alignment.report.order_is_base_order
    assert alignment.table.column("base_id").to_pylist() == expected * len(ATTACKS)
    by_block = {r.attack: r for r in alignment.report.blocks}
    assert by_block["wrap"].reliable == by_block["suffix"].reliable == by_block["b64"].reliable == n
    assert by_block["edit"].content_matched and not by_block["para"].content_matched
    para = alignment.table.filter(pc.equal(alignment.table.column("attack"), "para"))
    assert set(para.column("linked_by").to_pylist()) == {"order"}
    # rows read back from a store come in any order: file order (line_no) is restored
    scrambled = attack.take(np.random.default_rng(0).permutation(attack.num_rows))
    assert align_attacks(base.take(np.arange(n)[::-1]), scrambled).equals(alignment.table)


def test_shuffled_block_is_named() -> None:
    base, attack, _ = make_synthetic()
    n = base.num_rows
    i, j = _positions(attack, n, same_risk=False)
    with pytest.raises(AlignmentError, match=rf"block 0 \(attack 'wrap'\), position ({i}|{j}) .*risk_type"):
        align_attacks(base, _swap(attack, i, j))
    i, j = _positions(attack, n, same_risk=True)  # same risk type: only content can tell
    with pytest.raises(
        AlignmentError, match=rf"block 1 \(attack 'suffix'\), position ({i}|{j}) .*content matches base"
    ):
        align_attacks(base, _swap(attack, n + i, n + j))


def test_rows_moved_between_blocks_are_named() -> None:
    base, attack, _ = make_synthetic()
    n = base.num_rows
    moved = _swap(attack, 3, 2 * n + 7)  # whole rows, attack name included: blocks 0 and 2 interleave
    with pytest.raises(AlignmentError, match=r"block \d+ \(attack 'wrap', rows .*already formed block 0"):
        align_attacks(base, moved)
    content_only = _swap(attack, 3, 2 * n + 11, ("prompt", "risk_type"))  # labels kept, content exchanged
    with pytest.raises(AlignmentError, match=r"block [02] \(attack '(wrap|edit)'\), position (3|11)"):
        align_attacks(base, content_only)


def test_dropped_and_duplicated_rows_are_named() -> None:
    base, attack, _ = make_synthetic()
    n = base.num_rows
    dropped = _with_line_numbers(attack.take([i for i in range(attack.num_rows) if i != n + 5]))
    with pytest.raises(AlignmentError, match=rf"block 1 \(attack 'suffix', rows {n}-{2 * n - 2}\) has {n - 1} rows"):
        align_attacks(base, dropped)
    order = list(range(attack.num_rows))
    order.insert(3 * n + 4, 3 * n + 4)
    duplicated = _with_line_numbers(attack.take(order))
    with pytest.raises(AlignmentError, match=rf"block 3 \(attack 'b64', rows .*\) has {n + 1} rows"):
        align_attacks(base, duplicated)
    # a duplicate that replaces another row keeps the length but breaks the permutation
    i, j = _positions(attack, n, same_risk=True)  # same risk type, so only content can tell
    order = list(range(attack.num_rows))
    order[i] = j
    replaced = _with_line_numbers(attack.take(order))
    with pytest.raises(AlignmentError, match=rf"block 0 \(attack 'wrap'\), position {i} .*content matches base"):
        align_attacks(base, replaced)


def test_unmatchable_block_is_checked_by_risk_type() -> None:
    base, attack, _ = make_synthetic()
    n = base.num_rows
    i, j = _positions(attack, n, same_risk=False)
    swapped = _swap(attack, 4 * n + i, 4 * n + j)
    with pytest.raises(AlignmentError, match=rf"block 4 \(attack 'para'\), position ({i}|{j}) .*risk_type"):
        align_attacks(base, swapped)


def test_positions_without_content_are_inferred_or_refused() -> None:
    base, attack, ordering = make_synthetic()
    n = base.num_rows
    rng = random.Random(1)
    prompts = attack.column("prompt").to_pylist()
    i, j = _positions(attack, n, same_risk=True)
    for block in range(len(ATTACKS)):  # position i unreadable in every block
        prompts[block * n + i] = " ".join(_words(rng, 20))
    blind = attack.set_column(attack.schema.get_field_index("prompt"), "prompt", pa.array(prompts))
    alignment = recover_alignment(base, blind)
    assert alignment.report.positions_by_inference == 1
    assert alignment.report.ordering[i] == base.column("prompt_id")[ordering[i]].as_py()
    at_i = alignment.table.filter(pc.equal(alignment.table.column("position"), i))
    assert set(at_i.column("linked_by").to_pylist()) == {LINKED_BY_INFERENCE}
    for block in range(len(ATTACKS)):  # now also position j of the same risk type: elimination is ambiguous
        prompts[block * n + j] = " ".join(_words(rng, 20))
    blind = attack.set_column(attack.schema.get_field_index("prompt"), "prompt", pa.array(prompts))
    with pytest.raises(AlignmentError, match=rf"2 block position\(s\) could not be linked.*\[{i}, {j}\]"):
        align_attacks(base, blind)


def test_inputs_are_checked() -> None:
    base, attack, _ = make_synthetic(n=16)
    with pytest.raises(AlignmentError, match="one language and split"):
        align_attacks(base, attack.set_column(1, "lang", pa.array(["zh"] * attack.num_rows)))
    with pytest.raises(AlignmentError, match="set=base_risk"):
        align_attacks(attack, attack)
    assert issubclass(AlignmentError, InputError)


# --- Hugging Face datasets -------------------------------------------------------------------


def test_hf_datasets_gives_the_same_rows(seval_small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = seval_small / "S-Eval_base_risk_en_small.jsonl.zip"
    ours = read_seval_file(describe(path))
    ds = load_seval_file_hf(path, cache_dir=tmp_path / "hf")
    assert ds.num_rows == ours.num_rows == 1000
    assert ds.column_names == SEVAL_PROMPTS.names
    assert ds["prompt_id"] == ours.column("prompt_id").to_pylist()
    assert ds.data.table.cast(SEVAL_PROMPTS.schema).equals(ours)  # every column, every row


def test_hub_is_refused_quickly_when_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(HubUnavailable, match="HF_HUB_OFFLINE=1.*load_seval_file_hf"):
        load_seval_hub("base_risk_set_zh")
    assert time.perf_counter() - start < 1
