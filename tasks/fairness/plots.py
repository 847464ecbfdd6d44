"""Plots of a fairness evaluation (PNG bytes, written beside the leaderboard)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from trustflow.tasks.plotting import figure_row, png_bytes


def tradeoff(board: Sequence[Mapping[str, Any]]) -> bytes:
    """Utility vs fairness: accuracy against the equalised-odds gap, one point per model (its
    95 % intervals as error bars), one panel per dataset. Better is up and to the left."""
    datasets = sorted({r["dataset"] for r in board})
    fig, axes = figure_row(len(datasets), width=4.2, pad=1.0)
    for ax, ds in zip(axes, datasets or ["(no rows)"], strict=False):
        for r in (r for r in board if r["dataset"] == ds):
            if r["accuracy"] is None or r["eo_gap"] is None:
                continue
            xerr = [[r["eo_gap"] - (r["eo_gap_lo"] or r["eo_gap"])], [(r["eo_gap_hi"] or r["eo_gap"]) - r["eo_gap"]]]
            yerr = [
                [r["accuracy"] - (r["accuracy_lo"] or r["accuracy"])],
                [(r["accuracy_hi"] or r["accuracy"]) - r["accuracy"]],
            ]
            ax.errorbar([r["eo_gap"]], [r["accuracy"]], xerr=xerr, yerr=yerr, marker="o", capsize=3, label=r["method"])
        ax.set_title(ds, fontsize=9)
        ax.set_xlabel("equalised-odds gap (lower is fairer)")
        ax.set_ylabel("accuracy")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return png_bytes(fig)


def group_errors(rows: Sequence[Mapping[str, Any]]) -> bytes:
    """Error rate (1 − accuracy) per attribute group, a bar per model, one panel per dataset."""
    acc = [r for r in rows if r["metric"] == "accuracy" and r["group"] != "all" and r["value"] is not None]
    datasets = sorted({r["dataset"] for r in acc})
    fig, axes = figure_row(len(datasets), width=5.0, pad=1.0)
    for ax, ds in zip(axes, datasets or ["(no rows)"], strict=False):
        mine = [r for r in acc if r["dataset"] == ds]
        groups = sorted({r["group"] for r in mine})
        models = sorted({(r["model"], r["method"]) for r in mine})
        width = 0.8 / max(1, len(models))
        for i, (model, method) in enumerate(models):
            err = {r["group"]: 1 - r["value"] for r in mine if r["model"] == model}
            xs = [j + i * width for j, g in enumerate(groups) if g in err]
            ax.bar(xs, [err[g] for g in groups if g in err], width, label=method)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(groups))], groups, rotation=30, ha="right")
        ax.set_title(ds, fontsize=9)
        ax.set_ylabel("error rate")
        if models:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return png_bytes(fig)


__all__ = ["group_errors", "tradeoff"]
