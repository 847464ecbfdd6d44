"""Metrics from streamed counts (tasks/seval/metric_counts.py) equal the per-row metrics."""

from __future__ import annotations

import math
import random

import pandas as pd
import pyarrow as pa
import pytest

from trustflow.tasks.seval import metric_counts as mc
from trustflow.tasks.seval import metrics as m
from trustflow.tasks.seval.report import count_metric_rows, judgement_frame, metric_rows


def _judgements(n: int, seed: int) -> pa.Table:
    """Random judgements: 3 models, base + attack rows, base prompts asked in zh and en (same
    base_id), judge errors and unknown verdicts (null unsafe)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        attack = rng.random() < 0.7
        rows.append(
            {
                "model": rng.choice(["m-a", "m-b", "m-c"]),
                "set": "attack" if attack else "base_risk",
                "attack": rng.choice(["dan", "caesar", "role_play"]) if attack else "none",
                "base_id": f"b{rng.randrange(n // 6 + 1)}",
                "lang": rng.choice(["zh", "en"]),
                "dimension": rng.choice(["crime", "privacy", "ethics"]),
                "unsafe": rng.choice([True, False, False, None]),
                "judge_error": "bad json" if rng.random() < 0.08 else None,
                "critic_id": "c",
            }
        )
    return pa.Table.from_pylist(rows)


def _sorted(table: pa.Table) -> list[dict]:
    key = ("metric", "model", "dimension", "lang", "attack")
    return sorted(table.to_pylist(), key=lambda r: tuple(str(r[k]) for k in key))


@pytest.mark.parametrize("seed", [0, 1])
def test_counts_give_the_per_row_metrics_and_leaderboard(seed: int) -> None:
    table = _judgements(3000, seed)
    batches = [table.slice(i, 250) for i in range(0, table.num_rows, 250)]  # bases span batches
    counts = mc.count_judgements(batches)
    assert int(counts.rows["count_all"].sum()) == table.num_rows
    per_row, counted = _sorted(metric_rows(judgement_frame(table), "c")), _sorted(count_metric_rows(counts, "c"))
    assert len(per_row) == len(counted) > 20
    for a, b in zip(per_row, counted, strict=True):
        assert {k: v for k, v in a.items() if k not in ("value", "ci_low", "ci_high")} == {
            k: v for k, v in b.items() if k not in ("value", "ci_low", "ci_high")
        }
        for k in ("value", "ci_low", "ci_high"):
            assert (a[k] is None and b[k] is None) or math.isclose(a[k], b[k], rel_tol=1e-12, abs_tol=1e-12)
    board_rows = m.leaderboard(judgement_frame(table))
    board_counts = mc.leaderboard(counts)
    pd.testing.assert_frame_equal(board_rows.reset_index(drop=True), board_counts.reset_index(drop=True))


def test_base_flags_are_compacted_without_changing_the_result(monkeypatch: pytest.MonkeyPatch) -> None:
    table = _judgements(2000, 3)
    batches = [table.slice(i, 100) for i in range(0, table.num_rows, 100)]
    whole = mc.adaptive_asr(mc.count_judgements(batches), by=("model", "lang"))
    monkeypatch.setattr(mc, "COMPACT_ROWS", 10)  # re-aggregate after nearly every batch
    compacted = mc.adaptive_asr(mc.count_judgements(batches), by=("model", "lang"))
    pd.testing.assert_frame_equal(whole, compacted)
    assert mc.count_judgements([]).rows.empty and mc.leaderboard(mc.count_judgements([])).empty


def test_binomial_ci_is_the_bootstrap_of_any_zero_one_values() -> None:
    values = pd.Series([1, 0, 0, 1, 1, 0, 0, 0]).to_numpy()
    assert m.bootstrap_ci(values, seed=4) == m.binomial_ci(8, 3, seed=4)
    assert all(math.isnan(x) for x in m.binomial_ci(0, 0))
