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
- **Config selection** (layers × pooling, and the head kind when several are offered:
  logistic at a few strengths, a small MLP) by inner cross-validation over whole training
  sources (3 folds of sources, so each candidate is scored on sources it never saw): mean
  AUC per source, threshold-free.
- **Per-source class balance** (``balance="source_class"``): sources differ in base rate,
  and a source that is mostly unsafe otherwise teaches "this source's style means unsafe";
  every (source, class) cell then gets the same weight.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from trustflow.errors import InputError

REGULARISATION_C = 0.01
MAX_DIM: int | None = None  # fit on the top principal components only (see fit_linear); None: exact
INNER_FOLDS = 3  # inner cross-validation folds over the training sources
MLP_MAX_ITER = 300  # Adam epochs of the MLP head (fixed seed)
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


def source_weights(
    sources: Sequence[str], y: np.ndarray, written_weight: float = 0.5, balance: str = "source"
) -> np.ndarray:
    """Per-row weights: equal total per source (``balance="source"``) or per (source, class)
    cell (``"source_class"``), then balanced classes overall, written sources scaled."""
    src = np.asarray(sources)
    w = np.zeros(len(src), dtype=np.float64)
    for s in np.unique(src):
        m = src == s
        scale = written_weight if str(s).startswith("written:") else 1.0
        if balance == "source_class" and len(set(y[m].tolist())) == 2:
            for c in (0, 1):
                cell = m & (y == c)
                w[cell] = scale / 2 / cell.sum()
        else:
            w[m] = scale / m.sum()
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


class Head(Protocol):
    """What a fitted head offers: probabilities, a threshold, what it is."""

    threshold: float
    meta: dict[str, Any]

    def probability(self, x: np.ndarray) -> np.ndarray: ...


Fitter = Callable[[np.ndarray, np.ndarray, "np.ndarray | None"], Head]


@dataclass
class MLPHead:
    """Standardiser + a one-hidden-layer MLP (scikit-learn), for the non-linear comparison."""

    mean: np.ndarray
    scale: np.ndarray
    model: Any
    threshold: float = 0.5
    meta: dict[str, Any] = field(default_factory=dict)

    def probability(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_proba((x - self.mean) / self.scale)[:, 1])


def fit_mlp(
    x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None, hidden: int = 32, alpha: float = 1.0
) -> MLPHead:
    """A small MLP (``hidden`` ReLU units, strong L2 ``alpha``, fixed seed): few hundred rows of
    1.5k-dim features overfit anything larger. Unweighted rows are class-balanced by weight."""
    from sklearn.neural_network import MLPClassifier

    if len(set(y.tolist())) < 2:
        raise InputError("probe training labels need both safe and unsafe rows")
    if weights is None:
        weights = np.where(y == 1, 0.5 / max(1, int(y.sum())), 0.5 / max(1, int((y == 0).sum()))) * len(y)
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    model = MLPClassifier(hidden_layer_sizes=(hidden,), alpha=alpha, max_iter=MLP_MAX_ITER, random_state=0)
    model.fit((x - mean) / scale, y, sample_weight=weights)
    return MLPHead(mean, scale, model, meta={"kind": "mlp", "hidden": hidden, "alpha": alpha})


def linear_fitter(c: float = REGULARISATION_C) -> Fitter:
    return lambda x, y, w: fit_linear(x, y, w, c=c)


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
    head: Head
    inner_auc: dict[str, float]
    fitter: str = "logistic"
    oof: np.ndarray | None = None  # inner out-of-fold P(unsafe) of the chosen candidate (nan: never held out)


def train_probe(
    features: FeatureGetter,
    y: np.ndarray,
    sources: Sequence[str],
    configs: Sequence[Config],
    written_weight: float | None = 0.5,
    select_groups: Sequence[str] | None = None,
    inner_folds: int = INNER_FOLDS,
    fitters: dict[str, Fitter] | None = None,
    balance: str = "source",
) -> TrainedProbe:
    """Choose a config (and a head kind among ``fitters``, default the logistic regression) by
    inner cross-validation over whole sources (``inner_folds`` folds of the ``select_groups``
    sources, default every human one): mean AUC per held-out source; pick the threshold on
    the out-of-fold predictions; fit on everything.

    ``written_weight=None`` trains without source weighting (class-balanced only)."""
    src = np.asarray(sources)
    fitters = fitters or {"logistic": linear_fitter()}

    def weights(mask: np.ndarray) -> np.ndarray | None:
        return None if written_weight is None else source_weights(src[mask], y[mask], written_weight, balance)

    human = [str(s) for s in np.unique(src) if not str(s).startswith("written:")]
    groups_for_cv = list(select_groups) if select_groups is not None else human
    # inner folds: whole human sources held out together (source i → fold i mod k), so a
    # config is judged on sources it was not fitted on; written rows always stay in training
    fold_of = {s: f"fold{i % inner_folds}" for i, s in enumerate(sorted(groups_for_cv))}
    cv_groups = np.array([fold_of.get(str(s), "__always_train__") for s in src])
    folds = sorted(set(fold_of.values()))
    scores: dict[str, float] = {}
    oof_by: dict[tuple[Config, str], np.ndarray] = {}
    candidates = [(config, kind) for config in configs for kind in fitters]

    def cand_name(c: tuple[Config, str]) -> str:
        return config_name(c[0]) + ("" if len(fitters) == 1 else f"/{c[1]}")

    for cand in candidates:
        x = features(cand[0])
        if len(folds) >= 2:
            p = _oof_excluding(x, y, cv_groups, weights, fitters[cand[1]])
            held = cv_groups != "__always_train__"
            per = [auc(p[src == g], y[src == g]) for g in groups_for_cv]
            per = [a for a in per if not np.isnan(a)]
            scores[cand_name(cand)] = float(np.mean(per)) if per else float("nan")
            oof_by[cand] = np.where(held, p, np.nan)
        else:
            scores[cand_name(cand)] = float("nan")
    ranked = [c for c in candidates if not np.isnan(scores[cand_name(c)])]
    best = max(ranked, key=lambda c: scores[cand_name(c)]) if ranked else candidates[0]
    x = features(best[0])
    head = fitters[best[1]](x, y, weights(np.ones(len(y), dtype=bool)))
    oof = oof_by.get(best)
    if oof is not None and np.isfinite(oof).sum() >= 10:
        ok = np.isfinite(oof)
        head.threshold = best_threshold(oof[ok], y[ok])
    head.meta.update({"config": config_name(best[0]), "written_weight": written_weight, "fitter": best[1]})
    return TrainedProbe(best[0], head, scores, best[1], oof)


def _oof_excluding(
    x: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    weights: Callable[[np.ndarray], np.ndarray | None],
    fitter: Fitter | None = None,
) -> np.ndarray:
    fit = fitter or linear_fitter()
    p = np.full(len(y), np.nan)
    for g in np.unique(groups):
        if g == "__always_train__":
            continue
        test = groups == g
        train = ~test
        if len(set(y[train].tolist())) < 2:
            continue
        p[test] = fit(x[train], y[train], weights(train)).probability(x[test])
    return p
