"""Leave-one-source-out folds of a probe, and what can be put on top of them (issue 13).

Every addition is fitted and tuned on the training sources of the fold only, from the
probe's *inner out-of-fold* scores there (``TrainedProbe.oof``: each training row scored by
a probe that did not see its source), never from the held-out source:

- **stacking** with the refusal detector: a small logistic regression over
  (logit of the probe score, refusal-detector features), its threshold from its own
  out-of-fold scores over the training sources' folds;
- **rule**: a clear refusal (refusal cues, no compliance cue) is judged safe whatever the
  probe says; the threshold is re-chosen on the training rows with the rule applied;
- **second stage**: scores within ``delta`` of the threshold go to an LLM judge. ``delta`` is
  chosen on the training sources as the widest band that sends at most ``budget`` of their
  rows (inner out-of-fold scores) to the judge: a cost rule, so no LLM answer on training
  rows is needed (on 2 CPU cores every LLM answer costs seconds). The judge's verdict
  (P(harmful) ≥ 0.5) replaces the probe's inside the band; its score is mapped into the
  band (``threshold ± delta``) so rankings outside the band stay the probe's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from trustflow.models.critics.probe_fit import (
    INNER_FOLDS,
    best_threshold,
)
from trustflow.tasks.seval.critic_cross_source import Fold

Scored = tuple[np.ndarray, float]  # held-out scores and the threshold they are cut at


def plain(folds: Sequence[Fold]) -> list[Scored]:
    return [(f.p_test, f.probe.head.threshold) for f in folds]


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-4, 1 - 1e-4)
    return np.asarray(np.log(q / (1 - q)))


def _stack_fit(z: np.ndarray, y: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    from sklearn.linear_model import LogisticRegression

    mean, scale = z.mean(axis=0), z.std(axis=0) + 1e-6
    clf = LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000).fit((z - mean) / scale, y)
    return lambda q: np.asarray(clf.predict_proba((q - mean) / scale)[:, 1])


def stacked(folds: Sequence[Fold], y: np.ndarray, src: np.ndarray, extra: np.ndarray) -> list[Scored]:
    """(logit probe score, ``extra`` columns) → logistic regression, per fold on its training rows."""
    out: list[Scored] = []
    for f in folds:
        rows = np.flatnonzero(f.train)[np.isfinite(f.p_train_oof)]
        ok = np.isfinite(f.p_train_oof)
        z = np.column_stack([_logit(f.p_train_oof[ok]), extra[rows]])
        yy, ss = y[rows], src[rows]
        # the stacker's own threshold: its out-of-fold scores over folds of whole training sources
        groups = {s: i % INNER_FOLDS for i, s in enumerate(sorted(set(ss.tolist())))}
        g = np.array([groups[s] for s in ss])
        oof = np.full(len(yy), np.nan)
        for k in set(g.tolist()):
            tr = g != k
            if len(set(yy[tr].tolist())) == 2:
                oof[g == k] = _stack_fit(z[tr], yy[tr])(z[g == k])
        fin = np.isfinite(oof)
        threshold = best_threshold(oof[fin], yy[fin]) if fin.sum() >= 10 else 0.5
        model = _stack_fit(z, yy)
        out.append((model(np.column_stack([_logit(f.p_test), extra[f.test]])), threshold))
    return out


def with_rule(folds: Sequence[Fold], y: np.ndarray, safe_by_rule: np.ndarray) -> list[Scored]:
    """Rows ``safe_by_rule`` get score 0; the threshold is re-chosen on the training rows."""
    out: list[Scored] = []
    for f in folds:
        rows = np.flatnonzero(f.train)
        ok = np.isfinite(f.p_train_oof)
        p_tr = np.where(safe_by_rule[rows[ok]], 0.0, f.p_train_oof[ok])
        threshold = best_threshold(p_tr, y[rows[ok]]) if ok.sum() >= 10 else f.probe.head.threshold
        out.append((np.where(safe_by_rule[f.test], 0.0, f.p_test), threshold))
    return out


def choose_delta(p_oof: np.ndarray, threshold: float, budget: float, grid: Sequence[float]) -> float:
    """The widest ``delta`` in ``grid`` whose band |p − threshold| < delta holds ≤ ``budget`` of the rows."""
    p = p_oof[np.isfinite(p_oof)]
    best = 0.0
    for d in sorted(grid):
        if len(p) and float(np.mean(np.abs(p - threshold) < d)) <= budget:
            best = d
    return best


def second_stage_bands(
    base: Sequence[Scored], folds: Sequence[Fold], budget: float, grid: Sequence[float]
) -> list[tuple[float, np.ndarray]]:
    """Per fold: the chosen ``delta`` and the held-out rows (mask over ``fold.test``'s rows) it sends."""
    out = []
    for (p, t), f in zip(base, folds, strict=True):
        d = choose_delta(f.p_train_oof, t, budget, grid)
        out.append((d, np.abs(p - t) < d))
    return out


def second_stage(
    base: Sequence[Scored],
    bands: Sequence[tuple[float, np.ndarray]],
    judge: Sequence[np.ndarray],
) -> list[Scored]:
    """Inside each band the judge's P(harmful) (``judge[i]``: one per band row, nan = no
    answer → the probe's score stands) decides; mapped into ``threshold ± delta``."""
    out: list[Scored] = []
    for (p, t), (d, band), j in zip(base, bands, judge, strict=True):
        q = p.copy()
        idx = np.flatnonzero(band)
        for k, i in enumerate(idx):
            if np.isfinite(j[k]):
                # ≥ 0.5 lands at or above t (unsafe), below 0.5 below t; order kept inside the band
                q[i] = t + (float(j[k]) - 0.5) * 2 * d if j[k] != 0.5 else t
        out.append((q, t))
    return out


def summary(scored: Sequence[Scored], folds: Sequence[Fold], y: np.ndarray) -> dict[str, Any]:
    """Held-out figures per source plus pooled scores (for recall at precision)."""
    from trustflow.tasks.seval.critic_validation import binary_metrics

    per = {
        f.source: {**binary_metrics(p, y[f.test], t), "threshold": t, "n": int(f.test.sum())}
        for (p, t), f in zip(scored, folds, strict=True)
    }
    return {
        "per": per,
        "pooled_p": np.concatenate([p for p, _ in scored]) if scored else np.zeros(0),
        "pooled_y": np.concatenate([y[f.test] for f in folds]) if folds else np.zeros(0, dtype=int),
        "pooled_pred": np.concatenate([p >= t for p, t in scored]) if scored else np.zeros(0, dtype=bool),
    }
