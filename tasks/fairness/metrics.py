"""Fairness metrics of a classifier's predictions, with bootstrap intervals, per attribute group.

Definitions (``y`` true class, ``ŷ`` prediction, ``g`` group; rates per group):

- accuracy, macro-F1 (unweighted mean of the per-class F1; a class never seen nor predicted
  is left out);
- **demographic-parity gap**: max over groups − min over groups of P(ŷ = c | g);
- **TPR gap / FPR gap**: the same range of P(ŷ = c | y = c, g) and P(ŷ = c | y ≠ c, g);
  **equalised-odds gap** = max(TPR gap, FPR gap);
- **FPED / FNED** (Dixon et al.): Σ_g |FPR_g − FPR| and Σ_g |FNR_g − FNR| (overall rate);

each for class c = 1 (the positive class) when there are two classes, and averaged over the
classes one-vs-rest when there are more (for two classes that average equals the positive
class's DP and EO gaps anyway). A group without any row of the needed kind (e.g. no positives)
is left out of that range; a gap needs two groups, else it is NaN.

- **counterfactual flip rate**: the share of pair groups (texts that differ only in the group
  term) whose members do not all get the same prediction;
- **attribute leakage**: accuracy of a *fresh* logistic-regression probe predicting the group
  from the representation (fit on half of the rows, scored on the other half, stratified),
  minus the majority-group rate of the scored half (0 = no more than guessing).

Intervals: percentile bootstrap over rows (over pair groups for the flip rate), ``n``
resamples, 95 % by default; the same resampled indices serve every metric of one call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from trustflow.errors import InputError


@dataclass(frozen=True)
class Estimate:
    value: float
    lo: float
    hi: float

    def as_dict(self) -> dict[str, float]:
        return {"value": self.value, "lo": self.lo, "hi": self.hi}


def _rate(mask: np.ndarray, hit: np.ndarray) -> float:
    n = int(mask.sum())
    return float(hit[mask].mean()) if n else float("nan")


def _range(values: list[float]) -> float:
    v = [x for x in values if x == x]
    return max(v) - min(v) if len(v) >= 2 else float("nan")


def _nanmean(values: list[float]) -> float:
    v = [x for x in values if x == x]
    return float(np.mean(v)) if v else float("nan")


def macro_f1(y: np.ndarray, yhat: np.ndarray, n_classes: int) -> float:
    scores = []
    for c in range(n_classes):
        tp = int(((yhat == c) & (y == c)).sum())
        fp = int(((yhat == c) & (y != c)).sum())
        fn = int(((yhat != c) & (y == c)).sum())
        if tp + fp + fn:
            scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else float("nan")


def point_metrics(y: np.ndarray, yhat: np.ndarray, z: np.ndarray, n_classes: int, n_groups: int) -> dict[str, float]:
    """Every row-level metric of the module doc, as plain numbers."""
    classes = [1] if n_classes == 2 else list(range(n_classes))
    per: dict[str, list[float]] = {k: [] for k in ("dp_gap", "tpr_gap", "fpr_gap", "eo_gap", "fped", "fned")}
    groups = [z == g for g in range(n_groups)]
    for c in classes:
        pred, true = yhat == c, y == c
        pos_rate = [_rate(m, pred) for m in groups]
        tpr = [_rate(m & true, pred) for m in groups]
        fpr = [_rate(m & ~true, pred) for m in groups]
        fnr = [1 - t for t in tpr]
        all_fpr, all_fnr = _rate(~true, pred), 1 - _rate(true, pred)
        per["dp_gap"].append(_range(pos_rate))
        per["tpr_gap"].append(_range(tpr))
        per["fpr_gap"].append(_range(fpr))
        per["eo_gap"].append(max(_range(tpr), _range(fpr)) if _range(tpr) == _range(tpr) else _range(fpr))
        per["fped"].append(sum(abs(f - all_fpr) for f in fpr if f == f) if all_fpr == all_fpr else float("nan"))
        per["fned"].append(sum(abs(f - all_fnr) for f in fnr if f == f) if all_fnr == all_fnr else float("nan"))
    out = {"accuracy": float((y == yhat).mean()), "macro_f1": macro_f1(y, yhat, n_classes)}
    out.update({k: _nanmean(v) for k, v in per.items()})
    return out


def _interval(samples: Sequence[float], alpha: float) -> tuple[float, float]:
    v = np.array([s for s in samples if s == s])
    if not len(v):
        return float("nan"), float("nan")
    return float(np.quantile(v, alpha / 2)), float(np.quantile(v, 1 - alpha / 2))


def bootstrap(
    fn: Callable[[np.ndarray], dict[str, float]], n_rows: int, n: int = 200, seed: int = 0, alpha: float = 0.05
) -> dict[str, Estimate]:
    """``fn(indices)`` on all rows and on ``n`` resamples → an estimate per key."""
    point = fn(np.arange(n_rows))
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {k: [] for k in point}
    for _ in range(n):
        for k, v in fn(rng.integers(0, n_rows, n_rows)).items():
            draws[k].append(v)
    return {k: Estimate(point[k], *_interval(draws[k], alpha)) for k in point}


def fairness_metrics(
    y: np.ndarray,
    yhat: np.ndarray,
    z: np.ndarray,
    n_classes: int,
    groups: Sequence[str],
    n_boot: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """Overall metrics and per-group accuracy / macro-F1 / rates, each with an interval."""
    if not (len(y) == len(yhat) == len(z)) or not len(y):
        raise InputError(
            f"metrics need equally long, non-empty y, predictions and groups ({len(y)}, {len(yhat)}, {len(z)})"
        )
    overall = bootstrap(lambda i: point_metrics(y[i], yhat[i], z[i], n_classes, len(groups)), len(y), n_boot, seed)
    per_group = {}
    for g, name in enumerate(groups):
        rows = np.flatnonzero(z == g)
        if not len(rows):
            continue

        def one(i: np.ndarray, rows: np.ndarray = rows) -> dict[str, float]:
            yy, pp = y[rows[i]], yhat[rows[i]]
            out = {"accuracy": float((yy == pp).mean()), "macro_f1": macro_f1(yy, pp, n_classes)}
            if n_classes == 2:
                out |= {
                    "positive_rate": float((pp == 1).mean()),
                    "tpr": _rate(yy == 1, pp == 1),
                    "fpr": _rate(yy == 0, pp == 1),
                }
            return out

        per_group[name] = {
            "n": int(len(rows)),
            **{k: e.as_dict() for k, e in bootstrap(one, len(rows), n_boot, seed).items()},
        }
    return {"overall": {k: e.as_dict() for k, e in overall.items()}, "groups": per_group}


def flip_rate(preds: np.ndarray, pair_ids: Sequence[str | None], n_boot: int = 200, seed: int = 0) -> Estimate:
    """Share of pair groups (≥ 2 members) whose predictions are not all equal."""
    members: dict[str, list[int]] = {}
    for i, p in enumerate(pair_ids):
        if p is not None:
            members.setdefault(p, []).append(i)
    flips = np.array([len({int(preds[i]) for i in m}) > 1 for m in members.values() if len(m) >= 2], dtype=np.float64)
    if not len(flips):
        raise InputError("no counterfactual pairs (rows sharing a pair_id) to compute a flip rate on")
    est = bootstrap(lambda i: {"flip_rate": float(flips[i].mean())}, len(flips), n_boot, seed)
    return est["flip_rate"]


def leakage(reps: np.ndarray, z: np.ndarray, seed: int = 0) -> dict[str, float]:
    """A fresh linear probe's attribute accuracy on held-out rows vs the majority rate."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    if len(np.unique(z)) < 2:
        raise InputError("leakage needs rows of at least two groups")
    xa, xb, za, zb = train_test_split(reps, z, test_size=0.5, random_state=seed, stratify=z)
    scaler = StandardScaler().fit(xa)
    probe = LogisticRegression(max_iter=1000, random_state=seed).fit(scaler.transform(xa), za)
    acc = float((probe.predict(scaler.transform(xb)) == zb).mean())
    majority = float(np.bincount(zb).max() / len(zb))
    return {"probe_accuracy": acc, "majority_rate": majority, "leakage": acc - majority}
