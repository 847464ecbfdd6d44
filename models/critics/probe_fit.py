"""Fitting probe heads on feature arrays: source weighting, thresholds, inner cross-validation.

Pure numpy/scikit-learn on features already extracted (``features.py``), so every choice
here (layer set, pooling, source weights, threshold) is cheap to try many times over the
feature cache.

- **Source weighting.** Each training source gets the same total weight (a 250-row source
  does not drown a 30-row one), classes are balanced within the whole set, and LLM-written
  sources are scaled by ``written_weight`` (they are cleaner and more regular than real
  outputs, so by default they count less than a human-labelled source).
- **Threshold.** The cut that maximises balanced accuracy on *out-of-fold* predictions of
  the training sources (ties: nearest 0.5). Choosing it on the training fit would be
  optimistic; choosing it on the test source would be tuning on the test.
- **Config selection** (layers × pooling) by inner cross-validation over whole training
  sources (3 folds of sources, so each config is scored on sources it never saw): mean AUC
  per source, threshold-free.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trustflow.errors import InputError

REGULARISATION_C = 0.01
MAX_DIM: int | None = None  # fit on the top principal components only (see fit_linear); None: exact
INNER_FOLDS = 3  # inner cross-validation folds over the training sources
Config = tuple[tuple[int, ...], str]  # (layers concatenated, pooling)
FeatureGetter = Callable[[Config], np.ndarray]


def config_name(config: Config) -> str:
    return f"L{'+'.join(str(layer) for layer in config[0])}/{config[1]}"


@dataclass
class LinearHead:
    """Standardiser + logistic-regression weights + the decision threshold chosen in training."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    threshold: float = 0.5
    meta: dict[str, Any] = field(default_factory=dict)

    def probability(self, x: np.ndarray) -> np.ndarray:
        z = ((x - self.mean) / self.scale) @ self.coef + self.intercept
        return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -50, 50))))


def source_weights(sources: Sequence[str], y: np.ndarray, written_weight: float = 0.5) -> np.ndarray:
    """Per-row weights: equal total per source, balanced classes, written sources scaled."""
    src = np.asarray(sources)
    w = np.zeros(len(src), dtype=np.float64)
    for s in np.unique(src):
        m = src == s
        w[m] = (written_weight if str(s).startswith("written:") else 1.0) / m.sum()
    for c in (0, 1):  # balance the classes over the weighted set
        m = y == c
        if m.any():
            w[m] *= 0.5 / w[m].sum()
    return w * len(w) / w.sum()


def fit_linear(
    x: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray | None = None,
    c: float = REGULARISATION_C,
    max_dim: int | None = MAX_DIM,
) -> LinearHead:
    """The standardised L2 logistic regression (``class_weight`` balanced when no weights).

    With ``max_dim`` set and more feature dimensions than that, the regression runs on the
    top ``max_dim`` principal components of the *training* rows, folded back into one
    weight per feature (still a plain linear head). Off by default: on few labelled rows a
    discriminative direction of low variance can fall outside the top components."""
    from sklearn.linear_model import LogisticRegression

    if len(set(y.tolist())) < 2:
        raise InputError("probe training labels need both safe and unsafe rows")
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    z = (x - mean) / scale
    basis = None
    if max_dim is not None and z.shape[1] > max_dim:
        _, _, vt = np.linalg.svd(z - z.mean(axis=0), full_matrices=False)
        basis = vt[:max_dim].T  # d × k
        z = z @ basis
    clf = LogisticRegression(C=c, max_iter=2000, class_weight=None if weights is not None else "balanced")
    clf.fit(z, y, sample_weight=weights)
    coef = clf.coef_[0].astype(np.float64)
    if basis is not None:
        coef = basis @ coef
    return LinearHead(mean, scale, coef, float(clf.intercept_[0]), meta={"C": c, "max_dim": max_dim})


def best_threshold(p: np.ndarray, y: np.ndarray) -> float:
    """The cut maximising balanced accuracy of ``p >= t`` (ties: nearest 0.5)."""
    if len(set(y.tolist())) < 2:
        return 0.5
    cands = np.unique(np.concatenate([p, [0.5]]))
    pos, neg = y == 1, y == 0
    best, best_t = -1.0, 0.5
    for t in cands:
        pred = p >= t
        bal = (pred[pos].mean() + (~pred[neg]).mean()) / 2
        if bal > best + 1e-12 or (abs(bal - best) <= 1e-12 and abs(t - 0.5) < abs(best_t - 0.5)):
            best, best_t = bal, float(t)
    return best_t


def auc(p: np.ndarray, y: np.ndarray) -> float:
    """Area under the ROC curve (rank form, ties counted half); nan with one class."""
    pos, neg = p[y == 1], p[y == 0]
    if not len(pos) or not len(neg):
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    allv = np.concatenate([pos, neg])[order]
    ranks = np.empty(len(allv))
    i = 0
    while i < len(allv):  # average ranks over ties
        j = i
        while j + 1 < len(allv) and allv[j + 1] == allv[i]:
            j += 1
        ranks[i : j + 1] = (i + j) / 2 + 1
        i = j + 1
    r = np.empty(len(allv))
    r[order] = ranks
    return float((r[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


@dataclass
class TrainedProbe:
    """What :func:`train_probe` chose and fitted."""

    config: Config
    head: LinearHead
    inner_auc: dict[str, float]


def train_probe(
    features: FeatureGetter,
    y: np.ndarray,
    sources: Sequence[str],
    configs: Sequence[Config],
    written_weight: float | None = 0.5,
    select_groups: Sequence[str] | None = None,
    inner_folds: int = INNER_FOLDS,
) -> TrainedProbe:
    """Choose a config by inner cross-validation over whole sources (``inner_folds`` folds of
    the ``select_groups`` sources, default every human one): mean AUC per held-out source;
    pick the threshold on the out-of-fold predictions; fit on everything.

    ``written_weight=None`` trains without source weighting (class-balanced only)."""
    src = np.asarray(sources)

    def weights(mask: np.ndarray) -> np.ndarray | None:
        return None if written_weight is None else source_weights(src[mask], y[mask], written_weight)

    human = [str(s) for s in np.unique(src) if not str(s).startswith("written:")]
    groups_for_cv = list(select_groups) if select_groups is not None else human
    # inner folds: whole human sources held out together (source i → fold i mod k), so a
    # config is judged on sources it was not fitted on; written rows always stay in training
    fold_of = {s: f"fold{i % inner_folds}" for i, s in enumerate(sorted(groups_for_cv))}
    cv_groups = np.array([fold_of.get(str(s), "__always_train__") for s in src])
    folds = sorted(set(fold_of.values()))
    scores: dict[str, float] = {}
    oof_by: dict[Config, np.ndarray] = {}
    for config in configs:
        x = features(config)
        if len(folds) >= 2:
            p = _oof_excluding(x, y, cv_groups, weights)
            held = cv_groups != "__always_train__"
            per = [auc(p[src == g], y[src == g]) for g in groups_for_cv]
            per = [a for a in per if not np.isnan(a)]
            scores[config_name(config)] = float(np.mean(per)) if per else float("nan")
            oof_by[config] = np.where(held, p, np.nan)
        else:
            scores[config_name(config)] = float("nan")
    ranked = [c for c in configs if not np.isnan(scores[config_name(c)])]
    best = max(ranked, key=lambda c: scores[config_name(c)]) if ranked else configs[0]
    x = features(best)
    head = fit_linear(x, y, weights(np.ones(len(y), dtype=bool)))
    oof = oof_by.get(best)
    if oof is not None and np.isfinite(oof).sum() >= 10:
        ok = np.isfinite(oof)
        head.threshold = best_threshold(oof[ok], y[ok])
    head.meta.update({"config": config_name(best), "written_weight": written_weight})
    return TrainedProbe(best, head, scores)


def _oof_excluding(
    x: np.ndarray, y: np.ndarray, groups: np.ndarray, weights: Callable[[np.ndarray], np.ndarray | None]
) -> np.ndarray:
    p = np.full(len(y), np.nan)
    for g in np.unique(groups):
        if g == "__always_train__":
            continue
        test = groups == g
        train = ~test
        if len(set(y[train].tolist())) < 2:
            continue
        p[test] = fit_linear(x[train], y[train], weights(train)).probability(x[test])
    return p
