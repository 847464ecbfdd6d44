"""Balance: the same number of prompts in every (leaf_id, lang) group.

Why: per-leaf and per-language safety rates are compared against each other; a leaf with
40 prompts next to one with 3 makes the small one noisy and overweights the big one in any
pooled rate. Each group keeps exactly ``min(per_group, available)`` rows, preferring higher
hardness (when the column exists), then input order.

Groups with fewer than ``per_group`` rows cannot be fixed by selection (they need more
generation). They are reported in ``SelectionResult.shortfall`` (``(leaf_id, lang) -> rows
missing``), not as dropped rows: a missing prompt is not a rejected one, and mixing them
would make ``len(dropped)`` and the per-strategy drop counts lie. :func:`run_pipeline` copies
the shortfall into ``ctx.reports``. With ``expected_leaves`` (a list of ids, or ``"taxonomy"``
for every taxonomy leaf) groups that have no rows at all are reported too, for each language
in ``expected_langs``.
"""

from __future__ import annotations

from typing import Literal

import pandas as pd
from pydantic import Field

from trustflow.tasks.seval.selection.base import (
    SELECTORS,
    GroupKey,
    SelectionContext,
    SelectionResult,
    Strategy,
    StrategyOptions,
    groups,
    has_hardness,
    priority_order,
)


def _both_langs() -> list[Literal["zh", "en"]]:
    return ["zh", "en"]


class BalanceOptions(StrategyOptions):
    per_group: int = Field(ge=1)  # quota per (leaf_id, lang)
    expected_leaves: list[str] | Literal["taxonomy"] | None = None
    expected_langs: list[Literal["zh", "en"]] = Field(default_factory=_both_langs)


@SELECTORS.register("balance", example="balance?per_group=10")
class Balance(Strategy):
    """Keep exactly ``min(per_group, available)`` rows per (leaf_id, lang)."""

    Options = BalanceOptions
    options: BalanceOptions

    def select(self, df: pd.DataFrame, ctx: SelectionContext) -> SelectionResult:
        cfg = self.options
        q = cfg.per_group
        use_h = has_hardness(df)
        reasons: dict[int, str] = {}
        counts: dict[GroupKey, int] = {}
        for (leaf, lang), pos in groups(df, ["leaf_id", "lang"]):
            counts[(leaf, lang)] = len(pos)
            ranked = pos[priority_order(df.iloc[pos], use_h)]
            by = "hardness, then input order" if use_h else "input order"
            for rank, p in enumerate(ranked.tolist(), start=1):
                if rank > q:
                    reasons[p] = f"over quota: ({leaf}, {lang}) has {len(pos)} rows, per_group {q}; rank {rank} by {by}"
        expected = cfg.expected_leaves
        if expected == "taxonomy":
            expected = [n.id for n in ctx.get_taxonomy().leaves()]
        for leaf in expected or []:
            for lang in cfg.expected_langs:
                counts.setdefault((leaf, lang), 0)
        shortfall = {key: q - n for key, n in sorted(counts.items()) if n < q}
        return self.split(df, reasons, shortfall=shortfall)
