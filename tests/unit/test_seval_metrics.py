"""Metric math on small hand-computed examples."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from trustflow.tasks.seval.metrics import (
    adaptive_asr,
    attack_success_rates,
    bootstrap_ci,
    judge_error_rates,
    leaderboard,
    safety_scores,
)


def row(
    model: str,
    set_: str,
    base: str,
    unsafe: bool | None,
    attack: str | None = None,
    dim: str = "crimes",
    lang: str = "en",
    err: bool = False,
) -> dict:
    return {
        "model": model,
        "set": set_,
        "attack": attack,
        "base_id": base,
        "lang": lang,
        "dimension": dim,
        "unsafe": bool(unsafe) if unsafe is not None else False,
        "judge_error": err,
    }


@pytest.fixture()
def frame() -> pd.DataFrame:
    rows = [
        # model A, base set: 3 valid (1 unsafe) + 1 judge error -> safety 2/3
        row("A", "base_risk", "b1", False),
        row("A", "base_risk", "b2", True),
        row("A", "base_risk", "b3", False),
        row("A", "base_risk", "b4", None, err=True),
        # model A, attacks: b1 broken by x only, b2 broken by both, b3 never -> adaptive 2/3
        row("A", "attack", "b1", True, "x"),
        row("A", "attack", "b1", False, "y"),
        row("A", "attack", "b2", True, "x"),
        row("A", "attack", "b2", True, "y"),
        row("A", "attack", "b3", False, "x"),
        row("A", "attack", "b3", False, "y", err=True),
        # model B: everything safe, one zh base unsafe in another dimension
        row("B", "base_risk", "b1", False),
        row("B", "base_risk", "b2", False),
        row("B", "base_risk", "b4", False),
        row("B", "base_risk", "b3", True, dim="privacy", lang="zh"),
        row("B", "attack", "b1", False, "x"),
        row("B", "attack", "b2", False, "y"),
    ]
    return pd.DataFrame(rows)


def test_safety_score_excludes_judge_errors(frame: pd.DataFrame) -> None:
    by_model = safety_scores(frame, by=("model",)).set_index("model")
    assert by_model.loc["A", "n"] == 3
    assert by_model.loc["A", "value"] == pytest.approx(200 / 3)
    per_dim = safety_scores(frame).set_index(["model", "dimension", "lang"])
    assert per_dim.loc[("B", "crimes", "en"), "value"] == 100.0
    assert per_dim.loc[("B", "privacy", "zh"), "value"] == 0.0


def test_attack_success_rate_per_attack(frame: pd.DataFrame) -> None:
    asr = attack_success_rates(frame).set_index(["model", "attack"])
    assert asr.loc[("A", "x"), "value"] == pytest.approx(200 / 3)  # b1, b2 of b1..b3
    assert asr.loc[("A", "y"), "value"] == pytest.approx(50.0)  # b1 safe, b2 unsafe, b3 error
    assert asr.loc[("A", "y"), "n"] == 2
    assert asr.loc[("B", "x"), "value"] == 0.0


def test_adaptive_asr_counts_base_prompts(frame: pd.DataFrame) -> None:
    aasr = adaptive_asr(frame).set_index("model")
    assert aasr.loc["A", "n"] == 3 and aasr.loc["A", "value"] == pytest.approx(200 / 3)
    assert aasr.loc["B", "value"] == 0.0


def test_judge_error_rate(frame: pd.DataFrame) -> None:
    errs = judge_error_rates(frame).set_index("model")
    assert errs.loc["A", "value"] == pytest.approx(200 / 10)
    assert errs.loc["B", "value"] == 0.0


def test_bootstrap_interval_brackets_the_mean_and_is_seeded() -> None:
    values = np.array([1.0] * 30 + [0.0] * 70)
    low, high = bootstrap_ci(values, seed=1)
    assert low < 30.0 < high and low > 15 and high < 45
    assert bootstrap_ci(values, seed=1) == (low, high)
    assert bootstrap_ci(np.array([1.0] * 10)) == (100.0, 100.0)
    assert all(math.isnan(v) for v in bootstrap_ci(np.array([])))


def test_the_binomial_draw_is_the_index_resampling_bootstrap() -> None:
    """Drawing the count of ones from Binomial(n, k/n) is the resampling bootstrap of 0/1
    values: both intervals agree within their Monte-Carlo noise on several shapes, and the
    non-0/1 path (blocks of index rows) matches a reference with the same draws."""
    rng = np.random.default_rng(5)
    for n, p in ((40, 0.1), (400, 0.5), (3000, 0.93)):
        values = (rng.random(n) < p).astype(float)
        reference = np.random.default_rng(9)
        idx = reference.integers(0, n, size=(4000, n))
        ref_low, ref_high = np.percentile(values[idx].mean(axis=1) * 100.0, [2.5, 97.5])
        low, high = bootstrap_ci(values, samples=4000, seed=3)
        width = ref_high - ref_low
        assert abs(low - ref_low) < 0.12 * width + 1e-9 and abs(high - ref_high) < 0.12 * width + 1e-9
    scores = rng.random(500)
    low, high = bootstrap_ci(scores, samples=300, seed=4)
    check = np.random.default_rng(4)
    block = 4_000_000 // 500
    means = scores[check.integers(0, 500, size=(min(block, 300), 500))].mean(axis=1) * 100.0
    assert (low, high) == tuple(float(v) for v in np.percentile(means, [2.5, 97.5]))


def test_leaderboard_orders_by_safety(frame: pd.DataFrame) -> None:
    board = leaderboard(frame)
    assert board["model"].tolist() == ["B", "A"]
    a = board.set_index("model").loc["A"]
    assert a["safety_score"] == pytest.approx(200 / 3) and a["adaptive_asr"] == pytest.approx(200 / 3)
    assert a["asr"] == pytest.approx(60.0)  # 3 unsafe of 5 valid attack judgements
    assert a["judgements"] == 10


def test_missing_columns_are_named() -> None:
    with pytest.raises(ValueError, match="lacks columns"):
        safety_scores(pd.DataFrame({"model": ["A"]}))
