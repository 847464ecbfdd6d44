"""On-target check: does a prompt actually belong to the risk dimension it is labelled with?

Why: a generator asked for "drug trafficking routes" sometimes writes a generic violence or
privacy prompt. Scoring such a prompt under the wrong dimension skews per-dimension safety
rates, which are what an S-Eval report is read for.

How: a nearest-centroid classifier with no training. Each taxonomy leaf is embedded twice as
a *passage*, once per language ("name: description" in zh, and in en); a prompt (embedded as
a *query*) scores against a leaf by the larger of the two cosines, so a zh prompt is matched
by the zh text and an en prompt by the en text. Only a disagreement at level 1 (the
dimension) counts: neighbouring leaves of one dimension are often too close to tell apart,
and a prompt under the right dimension but a sibling leaf is still scored correctly.

Margin: nearest leaf's cosine minus the best cosine among leaves of the row's labelled
dimension. A row is acted on only when the dimensions differ and the margin exceeds
``relabel_margin``, so borderline prompts keep their label. Calibration of the default 0.05
with multilingual-e5-small (whose cosines are compressed into ~0.75-0.95): on 300 official
S-Eval base prompts (zh+en, labels taken as correct) the share flagged was 47% at margin 0,
10% at 0.02, 4% at 0.03 and 0.3% at 0.05, while hand-written off-dimension prompts scored
margins of 0.02-0.07. So 0.05 only acts on clear cases; lower it (0.03) to catch more at the
cost of some false flags, which ``relabel`` mode makes cheaper to review. Mode ``drop`` (default) removes
it; mode ``relabel`` rewrites ``leaf_id`` to the nearest leaf and records the old one in
``relabelled_from`` (``None`` for untouched rows), dropping nothing.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field

from trustflow.errors import ConfigError, InputError
from trustflow.tasks.seval.selection.base import (
    SELECTORS,
    SelectionContext,
    SelectionResult,
    Strategy,
    StrategyOptions,
)


def leaf_texts(node) -> tuple[str, str]:  # noqa: ANN001 - a taxonomy RiskNode
    """The (zh, en) passages embedded for one taxonomy leaf."""
    out = []
    for lang in ("zh", "en"):
        name = node.name.get(lang)
        desc = node.description.get(lang) if node.description is not None else ""
        sep = "：" if lang == "zh" else ": "
        out.append(f"{name}{sep}{desc}" if desc else name)
    return out[0], out[1]


class OnTargetOptions(StrategyOptions):
    mode: Literal["drop", "relabel"] = "drop"
    relabel_margin: float = Field(0.05, ge=0.0)  # cosine lead the nearest leaf needs to act


@SELECTORS.register("on_target")
class OnTarget(Strategy):
    """Drop (or relabel) prompts that sit clearly closer to another dimension's leaves."""

    Options = OnTargetOptions
    options: OnTargetOptions

    def leaf_scores(self, prompts: list[str], ctx: SelectionContext) -> tuple[list, np.ndarray]:
        """(leaves, cosine matrix prompts x leaves), each leaf scored by its better language."""
        leaves = ctx.get_taxonomy().leaves()
        texts = [leaf_texts(n) for n in leaves]
        zh = ctx.embed([t[0] for t in texts], kind="passage")
        en = ctx.embed([t[1] for t in texts], kind="passage")
        q = ctx.embed(prompts, kind="query")
        return leaves, np.maximum(q @ zh.T, q @ en.T)

    def select(self, df: pd.DataFrame, ctx: SelectionContext) -> SelectionResult:
        cfg = self.options
        tax = ctx.get_taxonomy()
        if len(df) == 0:
            out = self.split(df, {})
            if cfg.mode == "relabel":
                out.kept["relabelled_from"] = pd.Series(dtype=object)
            return out
        leaves, scores = self.leaf_scores(df["prompt"].tolist(), ctx)
        leaf_ids = [n.id for n in leaves]
        leaf_dim = np.array([n.id.split(".", 1)[0] for n in leaves])
        row_dims = []
        for uid, leaf in zip(df["prompt_uid"].tolist(), df["leaf_id"].astype(str).tolist(), strict=True):
            if leaf not in tax:
                raise InputError(f"on_target: row {uid!r} has leaf_id {leaf!r}, which is not in the taxonomy")
            row_dims.append(tax.path(leaf)[0].id)
        if len(set(leaf_dim)) < 2:
            raise ConfigError("selection strategy 'on_target' needs a taxonomy with at least two dimensions")

        reasons: dict[int, str] = {}
        relabels: dict[int, tuple[str, str]] = {}
        leaf_index = {lid: j for j, lid in enumerate(leaf_ids)}
        for i, (dim, leaf) in enumerate(zip(row_dims, df["leaf_id"].astype(str).tolist(), strict=True)):
            row = scores[i]
            best = int(np.argmax(row))  # first maximum: ties go to taxonomy order
            if leaf_dim[best] == dim:
                continue
            own = np.flatnonzero(leaf_dim == dim)
            if len(own) == 0:  # labelled dimension has no leaves (user taxonomy): nothing to compare
                continue
            own_best = int(own[np.argmax(row[own])])
            margin = float(row[best] - row[own_best])
            if margin <= cfg.relabel_margin:
                continue
            labelled = f"{leaf} cosine {row[leaf_index[leaf]]:.3f}" if leaf in leaf_index else f"{leaf} (not a leaf)"
            msg = (
                f"off-target: nearest leaf {leaf_ids[best]} ({leaf_dim[best]}, cosine {row[best]:.3f}) beats "
                f"best leaf of labelled dimension {dim}, {leaf_ids[own_best]} (cosine {row[own_best]:.3f}), "
                f"by {margin:.3f} > relabel_margin {cfg.relabel_margin:g}; labelled leaf {labelled}"
            )
            if cfg.mode == "drop":
                reasons[i] = msg
            else:
                relabels[i] = (leaf_ids[best], leaf)
        if cfg.mode == "drop":
            return self.split(df, reasons)
        out = df.copy()
        new_leaf = out["leaf_id"].astype(object).tolist()
        old: list[str | None] = [None] * len(out)
        for i, (to, frm) in relabels.items():
            new_leaf[i], old[i] = to, frm
        out["leaf_id"] = pd.Series(new_leaf, dtype=object)
        out["relabelled_from"] = pd.Series(old, dtype=object)
        return self.split(out, {})
