"""Hardness filter: keep prompts that actually challenge models.

``hardness`` (higher = harder) comes from an earlier stage: reference models answer each
candidate and the critic judges the answers (e.g. the share of unsafe answers). A prompt
every model handles safely tells little about the model under test, so this stage drops rows
below ``min_hardness`` and, if ``top_k`` is set, keeps only the ``top_k`` hardest per
(leaf_id, lang), ties by input order. Rows without a hardness value (NaN) are dropped: they
were never judged, and keeping them would let unjudged prompts outrank judged easy ones.
Kept rows stay in input order, like every strategy's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import Field

from trustflow.errors import ConfigError
from trustflow.tasks.seval.selection.base import (
    SELECTORS,
    SelectionContext,
    SelectionResult,
    Strategy,
    StrategyOptions,
    groups,
    priority_order,
)


class HardnessOptions(StrategyOptions):
    min_hardness: float = 0.0
    top_k: int | None = Field(None, ge=1)  # per (leaf_id, lang); None: no cap


@SELECTORS.register("hardness")
class Hardness(Strategy):
    """Drop rows below ``min_hardness``; keep at most the ``top_k`` hardest per group."""

    Options = HardnessOptions
    options: HardnessOptions
    needs_columns = ("hardness",)

    def missing_column_error(self, column: str) -> ConfigError:
        return ConfigError(
            "selection strategy 'hardness' needs a 'hardness' column: run the hardness stage first "
            "(reference-model answers judged by the critic) and select on its output"
        )

    def select(self, df: pd.DataFrame, ctx: SelectionContext) -> SelectionResult:
        cfg = self.options
        h = pd.to_numeric(df["hardness"], errors="coerce").to_numpy(dtype=np.float64)
        reasons: dict[int, str] = {}
        for i, v in enumerate(h):
            if np.isnan(v):
                reasons[i] = "hardness missing (NaN): the prompt was never judged"
            elif v < cfg.min_hardness:
                reasons[i] = f"hardness {v:.3f} < min_hardness {cfg.min_hardness:g}"
        if cfg.top_k is not None:
            for (leaf, lang), pos in groups(df, ["leaf_id", "lang"]):
                alive = np.array([p for p in pos if int(p) not in reasons], dtype=np.int64)
                ranked = alive[priority_order(df.iloc[alive], True)] if len(alive) else alive
                for rank, p in enumerate(ranked.tolist(), start=1):
                    if rank > cfg.top_k:
                        reasons[p] = f"hardness {h[p]:.3f} ranks {rank} in ({leaf}, {lang}) > top_k {cfg.top_k}"
        return self.split(df, reasons)
