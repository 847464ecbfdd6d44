"""Plots of the attribute robustness evaluation (PNG bytes, written beside the leaderboard)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from trustflow.tasks.attributes.metrics import ALL_LEVELS, ORIGINAL, level_order
from trustflow.tasks.plotting import png_bytes

ACCURACY_VS_LEVEL = "accuracy_vs_level.png"


def accuracy_vs_level(board: Sequence[Mapping[str, Any]]) -> bytes:
    """One panel per edited attribute: top-1 accuracy per level, a line per model, and the
    model's accuracy on the same objects' originals as a dotted line of the same colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    attributes = sorted({r["attribute"] for r in board if r["attribute"] != ORIGINAL})
    models = sorted({r["model"] for r in board})
    n = max(1, len(attributes))
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n + 1.5, 3.4), squeeze=False, sharey=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, attribute in zip(axes[0], attributes or ["(no edits)"], strict=False):
        rows = [r for r in board if r["attribute"] == attribute and r["level"] != ALL_LEVELS]
        levels = level_order(r["level"] for r in rows)
        for i, model in enumerate(models):
            colour = colours[i % len(colours)]
            mine = {r["level"]: r for r in rows if r["model"] == model}
            xs = [j for j, lv in enumerate(levels) if lv in mine]
            ax.plot(xs, [mine[levels[j]]["top1"] for j in xs], marker="o", color=colour, label=model)
            originals = [mine[lv]["top1_original"] for lv in levels if lv in mine]
            if originals:
                ax.axhline(sum(originals) / len(originals), color=colour, linestyle=":", alpha=0.7)
        ax.set_xticks(range(len(levels)), levels, rotation=30, ha="right")
        ax.set_title(attribute)
        ax.set_xlabel("level")
        ax.set_ylim(-0.02, 1.02)
    axes[0][0].set_ylabel("top-1 accuracy (dotted: originals)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, [_short(lb) for lb in labels], loc="lower center", ncol=min(3, len(labels)), fontsize=8)
    fig.tight_layout(rect=(0, 0.12 if handles else 0, 1, 1))
    return png_bytes(fig)


def _short(label: str, limit: int = 40) -> str:
    return label if len(label) <= limit else "…" + label[-(limit - 1) :]


__all__ = ["ACCURACY_VS_LEVEL", "accuracy_vs_level"]
