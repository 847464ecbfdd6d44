"""Fairness metrics on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from trustflow.errors import InputError
from trustflow.tasks.fairness.metrics import fairness_metrics, flip_rate, leakage, macro_f1, point_metrics

# two groups of four; group 0: y=[1,1,0,0] ŷ=[1,0,0,0]; group 1: y=[1,1,0,0] ŷ=[1,1,1,0]
Y = np.array([1, 1, 0, 0, 1, 1, 0, 0])
P = np.array([1, 0, 0, 0, 1, 1, 1, 0])
Z = np.array([0, 0, 0, 0, 1, 1, 1, 1])


def test_binary_gaps_by_hand() -> None:
    m = point_metrics(Y, P, Z, 2, 2)
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["dp_gap"] == pytest.approx(3 / 4 - 1 / 4)  # positive rates 1/4 and 3/4
    assert m["tpr_gap"] == pytest.approx(1 - 1 / 2)  # TPR 1/2 and 1
    assert m["fpr_gap"] == pytest.approx(1 / 2 - 0)  # FPR 0 and 1/2
    assert m["eo_gap"] == pytest.approx(1 / 2)
    # overall FPR 1/4, FNR 1/4; FPED = |0-1/4|+|1/2-1/4|, FNED = |1/2-1/4|+|0-1/4|
    assert m["fped"] == pytest.approx(0.5) and m["fned"] == pytest.approx(0.5)
    # F1: class 1 tp=3 fp=1 fn=1 → 6/8; class 0 tp=3 fp=1 fn=1 → 6/8
    assert m["macro_f1"] == pytest.approx(0.75)


def test_multiclass_gaps_average_one_vs_rest_classes() -> None:
    y = np.array([0, 1, 2, 0, 1, 2])
    p = np.array([0, 1, 2, 0, 0, 0])
    z = np.array([0, 0, 0, 1, 1, 1])
    m = point_metrics(y, p, z, 3, 2)
    # P(ŷ=c|g): g0 = 1/3,1/3,1/3; g1 = 1, 0, 0 → ranges 2/3, 1/3, 1/3
    assert m["dp_gap"] == pytest.approx((2 / 3 + 1 / 3 + 1 / 3) / 3)
    # TPR per class: c0 1 vs 1; c1 1 vs 0; c2 1 vs 0 → gaps 0,1,1; FPR: c0 0 vs 1, c1 0 vs 0, c2 0 vs 0
    assert m["tpr_gap"] == pytest.approx(2 / 3) and m["fpr_gap"] == pytest.approx(1 / 3)
    assert m["eo_gap"] == pytest.approx((1 + 1 + 1) / 3)


def test_fair_predictions_have_zero_gaps_and_macro_f1_skips_absent_classes() -> None:
    m = point_metrics(Y, Y, Z, 2, 2)
    assert m["dp_gap"] == 0 and m["eo_gap"] == 0 and m["fped"] == 0 and m["fned"] == 0
    assert macro_f1(np.array([0, 0]), np.array([0, 0]), 3) == 1.0


def test_bootstrap_intervals_hold_the_point_and_groups_are_reported() -> None:
    rng = np.random.default_rng(0)
    y, z = rng.integers(0, 2, 400), rng.integers(0, 2, 400)
    p = np.where(rng.random(400) < 0.8, y, 1 - y)
    out = fairness_metrics(y, p, z, 2, ["a", "b"], n_boot=100)
    for k, e in out["overall"].items():
        assert e["lo"] <= e["value"] <= e["hi"], k
    acc = out["overall"]["accuracy"]
    assert 0.74 < acc["value"] < 0.86 and acc["hi"] - acc["lo"] < 0.15
    assert set(out["groups"]) == {"a", "b"} and out["groups"]["a"]["n"] + out["groups"]["b"]["n"] == 400
    assert {"accuracy", "macro_f1", "positive_rate", "tpr", "fpr"} <= set(out["groups"]["a"])


def test_flip_rate_counts_pairs_with_any_disagreement() -> None:
    preds = np.array([1, 1, 0, 1, 0, 0, 2])
    pairs = ["p1", "p1", "p2", "p2", "p3", "p3", None]
    assert flip_rate(preds, pairs, n_boot=20).value == pytest.approx(1 / 3)
    with pytest.raises(InputError, match="no counterfactual pairs"):
        flip_rate(preds, [None] * 7)


def test_leakage_is_high_for_an_encoded_attribute_and_near_zero_for_noise() -> None:
    rng = np.random.default_rng(0)
    z = rng.integers(0, 2, 400)
    noise = rng.normal(size=(400, 8))
    assert leakage(noise, z)["leakage"] < 0.1
    coded = noise.copy()
    coded[:, 0] += 3 * z
    got = leakage(coded, z)
    assert got["probe_accuracy"] > 0.9 and got["leakage"] > 0.35 and 0.45 < got["majority_rate"] < 0.56
