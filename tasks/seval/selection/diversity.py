"""Diversity: per (leaf_id, lang), keep at most ``k`` prompts that cover the group's variety.

Why: generators produce many variations of a few ideas. Taking the first ``k`` keeps a
cluster; taking ``k`` that are spread out tests more distinct behaviours per risk leaf for
the same evaluation cost.

``method: kcenter`` (default) is Gonzalez's greedy k-center: start at the prompt nearest the
group's centroid, then repeatedly add the prompt farthest from everything selected. It is a
2-approximation of the smallest *coverage radius* (max over prompts of the distance to the
nearest selected one; see :func:`coverage_radius`), i.e. every dropped prompt has a kept
prompt close to it. It ignores hardness.

``method: mmr`` is maximal marginal relevance: repeatedly add the prompt maximising
``lambda_ * relevance - (1 - lambda_) * max cosine to the selected``, with relevance = hardness
min-max scaled within the group (scale-free; all 1 when there is no hardness column or it is
constant). It trades coverage for harder prompts.

Distances are Euclidean between the (unit) embeddings, ``sqrt(2 - 2 cos)``, a true metric, so
the 2-approximation holds. Ties go to the earlier row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field

from trustflow.tasks.seval.selection.base import (
    SELECTORS,
    SelectionContext,
    SelectionResult,
    Strategy,
    StrategyOptions,
    groups,
    has_hardness,
)


def _sq_dists(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances between the rows of x and y (clipped at 0)."""
    d = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * (x @ y.T)
    return np.maximum(d, 0.0)


def coverage_radius(embeddings: np.ndarray, selected_idx: Sequence[int]) -> float:
    """Max over all points of the Euclidean distance to the nearest selected point."""
    x = np.asarray(embeddings, dtype=np.float64)
    sel = np.asarray(list(selected_idx), dtype=np.int64)
    if len(x) == 0:
        return 0.0
    if len(sel) == 0:
        return float("inf")
    return float(np.sqrt(_sq_dists(x, x[sel]).min(axis=1).max()))


def kcenter_greedy(x: np.ndarray, k: int) -> list[int]:
    """Indices of ``min(k, n)`` points chosen by greedy k-center (first: nearest the centroid)."""
    n = len(x)
    if n == 0 or k <= 0:
        return []
    x = np.asarray(x, dtype=np.float64)
    first = int(np.argmin(_sq_dists(x, x.mean(axis=0, keepdims=True))[:, 0]))
    chosen = [first]
    nearest = _sq_dists(x, x[[first]])[:, 0]
    while len(chosen) < min(k, n):
        nearest[chosen] = -1.0  # never re-pick (distance 0 ties with duplicates otherwise)
        nxt = int(np.argmax(nearest))
        chosen.append(nxt)
        nearest = np.minimum(nearest, _sq_dists(x, x[[nxt]])[:, 0])
    return chosen


def mmr_select(x: np.ndarray, relevance: np.ndarray, k: int, lambda_: float) -> list[int]:
    """Indices of ``min(k, n)`` points chosen by maximal marginal relevance (cosine similarity)."""
    n = len(x)
    if n == 0 or k <= 0:
        return []
    x = np.asarray(x, dtype=np.float64)
    rel = np.asarray(relevance, dtype=np.float64)
    max_sim = np.zeros(n)
    taken = np.zeros(n, dtype=bool)
    chosen: list[int] = []
    while len(chosen) < min(k, n):
        score = lambda_ * rel - (1.0 - lambda_) * (max_sim if chosen else 0.0)
        score = np.where(taken, -np.inf, score)
        nxt = int(np.argmax(score))
        chosen.append(nxt)
        taken[nxt] = True
        max_sim = np.maximum(max_sim, x @ x[nxt])
    return chosen


def _relevance(df: pd.DataFrame) -> np.ndarray:
    """Hardness min-max scaled to [0, 1] within the group; NaN counts as 0, a constant as 1."""
    if not has_hardness(df):
        return np.ones(len(df))
    h = pd.to_numeric(df["hardness"], errors="coerce").to_numpy(dtype=np.float64)
    known = h[~np.isnan(h)]
    lo, hi = (float(known.min()), float(known.max())) if len(known) else (0.0, 0.0)
    if hi == lo:
        return np.where(np.isnan(h), 0.0, 1.0)
    return np.where(np.isnan(h), 0.0, (h - lo) / (hi - lo))


class DiversityOptions(StrategyOptions):
    k: int = Field(ge=1)  # at most this many rows per (leaf_id, lang)
    method: Literal["kcenter", "mmr"] = "kcenter"
    lambda_: float = Field(0.7, ge=0.0, le=1.0)  # mmr only: weight of relevance vs. novelty


@SELECTORS.register("diversity", example="diversity?k=20")
class Diversity(Strategy):
    """Cap each (leaf_id, lang) group at ``k`` rows, chosen to be spread out (or hard + spread)."""

    Options = DiversityOptions
    options: DiversityOptions

    def select(self, df: pd.DataFrame, ctx: SelectionContext) -> SelectionResult:
        cfg = self.options
        if len(df) == 0:
            return self.split(df, {})
        emb = ctx.embed(df["prompt"].tolist(), kind="query")
        uids = df["prompt_uid"].astype(str).tolist()
        reasons: dict[int, str] = {}
        for (leaf, lang), pos in groups(df, ["leaf_id", "lang"]):
            if len(pos) <= cfg.k:
                continue
            x = emb[pos]
            chosen = (
                kcenter_greedy(x, cfg.k)
                if cfg.method == "kcenter"
                else mmr_select(x, _relevance(df.iloc[pos]), cfg.k, cfg.lambda_)
            )
            chosen_set = set(chosen)
            sims = x @ x[chosen].T
            for i in range(len(pos)):
                if i in chosen_set:
                    continue
                j = int(np.argmax(sims[i]))
                reasons[int(pos[i])] = (
                    f"diversity ({cfg.method}): group ({leaf}, {lang}) has {len(pos)} rows > k {cfg.k}; "
                    f"closest kept {uids[pos[chosen[j]]]} (cosine {sims[i, j]:.3f})"
                )
        return self.split(df, reasons)
