"""Leave-one-source-out validation of a trainable (probe) critic: the honest figure.

For each held-out source S: train on every other training source (layers/pooling chosen by
inner leave-one-source-out CV on those sources only, threshold chosen on their out-of-fold
predictions), then score S once with that threshold. S's rows never influence anything
that judges them. The matrix (held-out source × figures) is what predicts accuracy on a
user's own models, whose outputs come from none of the training sources.

Sources that are not harm-labelled both ways (``pyrit-refusal``: refusals only) and the
held-out written set (``written:critic_holdout``) are never training sources; they are
scored by the probe trained on all training sources, beside the matrix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from trustflow.models.critics.probe_fit import Config, FeatureGetter, Fitter, TrainedProbe, config_name, train_probe
from trustflow.tasks.seval.critic_validation import binary_metrics

HOLDOUT_WRITTEN = "written:critic_holdout"


def is_training_source(source: str, use_written: bool) -> bool:
    if source == HOLDOUT_WRITTEN or source == "pyrit-refusal":
        return False
    return use_written or not source.startswith("written:")


@dataclass
class CrossSourceResult:
    rows: dict[str, dict[str, Any]]  # held-out source → figures, threshold, chosen config
    pooled_p: np.ndarray  # held-out scores of every LOSO source, concatenated
    pooled_y: np.ndarray
    beside: dict[str, dict[str, Any]]  # non-training sources scored by the all-sources probe
    final: TrainedProbe | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "held_out": self.rows,
            "beside": self.beside,
            "pooled": {
                **binary_metrics(self.pooled_p, self.pooled_y, 0.5),
                "recall_at_p80": recall_at_precision(self.pooled_p, self.pooled_y),
            },
            "final_config": config_name(self.final.config) if self.final else None,
            "final_threshold": self.final.head.threshold if self.final else None,
        }


def recall_at_precision(p: np.ndarray, y: np.ndarray, min_precision: float = 0.80) -> float:
    """The highest recall of unsafe at any cut whose precision is ≥ ``min_precision`` (0 if none)."""
    best = 0.0
    for t in np.unique(p):
        pred = p >= t
        tp = int((pred & (y == 1)).sum())
        if pred.sum() and tp / pred.sum() >= min_precision and y.sum():
            best = max(best, tp / int(y.sum()))
    return best


@dataclass
class Fold:
    """One held-out source: the probe trained without it and its scores."""

    source: str
    train: np.ndarray  # row mask of the training rows
    test: np.ndarray  # row mask of the held-out source
    probe: TrainedProbe
    p_test: np.ndarray  # P(unsafe) of the held-out rows
    p_train_oof: np.ndarray  # inner out-of-fold P(unsafe) of the training rows (nan: never held out)


def cached_features(features: FeatureGetter) -> FeatureGetter:
    """``features`` computing each config's matrix once: every fold slices the same rows."""
    cache: dict[Config, np.ndarray] = {}

    def full(config: Config) -> np.ndarray:
        if config not in cache:
            cache[config] = features(config)
        return cache[config]

    return full


def loso_folds(
    features: FeatureGetter,
    y: np.ndarray,
    sources: Sequence[str],
    configs: Sequence[Config],
    held_out: Sequence[str],
    use_written: bool = True,
    written_weight: float | None = 0.5,
    fitters: dict[str, Fitter] | None = None,
    balance: str = "source",
) -> list[Fold]:
    """A probe per held-out source, trained on every other training source."""
    src = np.asarray(sources)
    pool = np.array([is_training_source(s, use_written) for s in src])
    full = cached_features(features)
    folds = []
    for s in held_out:
        train, test = pool & (src != s), src == s
        probe = train_probe(
            lambda c, m=train: full(c)[m],  # type: ignore[misc]
            y[train],
            src[train],
            configs,
            written_weight,
            fitters=fitters,
            balance=balance,
        )
        oof = probe.oof if probe.oof is not None else np.full(int(train.sum()), np.nan)
        folds.append(Fold(s, train, test, probe, probe.head.probability(full(probe.config)[test]), oof))
    return folds


def cross_source(
    features: FeatureGetter,
    y: np.ndarray,
    sources: Sequence[str],
    configs: Sequence[Config],
    held_out: Sequence[str],
    use_written: bool = True,
    written_weight: float | None = 0.5,
) -> CrossSourceResult:
    """Train on all training sources but one, test on the one left out, for each of ``held_out``."""
    src = np.asarray(sources)
    pool = np.array([is_training_source(s, use_written) for s in src])
    full = cached_features(features)
    rows: dict[str, dict[str, Any]] = {}
    pooled_p, pooled_y = [], []
    for fold in loso_folds(full, y, sources, configs, held_out, use_written, written_weight):
        probe = fold.probe
        rows[fold.source] = {
            **binary_metrics(fold.p_test, y[fold.test], probe.head.threshold),
            "n": int(fold.test.sum()),
            "threshold": probe.head.threshold,
            "config": config_name(probe.config),
        }
        pooled_p.append(fold.p_test)
        pooled_y.append(y[fold.test])
    final = train_probe(full_masked(full, pool), y[pool], src[pool], configs, written_weight) if pool.any() else None
    beside: dict[str, dict[str, Any]] = {}
    if final is not None:
        for s in sorted(set(src[~pool].tolist())):
            m = src == s
            p = final.head.probability(full(final.config)[m])
            beside[s] = {
                **binary_metrics(p, y[m], final.head.threshold),
                "n": int(m.sum()),
                "threshold": final.head.threshold,
            }
    return CrossSourceResult(
        rows,
        np.concatenate(pooled_p) if pooled_p else np.zeros(0),
        np.concatenate(pooled_y) if pooled_y else np.zeros(0, dtype=int),
        beside,
        final,
    )


def full_masked(full: FeatureGetter, mask: np.ndarray) -> FeatureGetter:
    return lambda c: full(c)[mask]
