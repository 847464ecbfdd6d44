"""Plots of a few-shot run (PNG bytes, written beside the leaderboard): accuracy against shots
per method, and accuracy against the robustness delta (does adaptation trade one for the other)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from trustflow.tasks.plotting import figure_row, png_bytes


def accuracy_vs_shots(board: Sequence[Mapping[str, Any]]) -> bytes:
    """One panel per set, one line per method: mean query accuracy over seeds against k (log
    axis), the std over seeds as error bars."""
    sets = sorted({r["set"] for r in board})
    fig, axes = figure_row(len(sets), width=4.4, pad=1.6)
    for ax, s in zip(axes, sets or ["(no rows)"], strict=False):
        for method in sorted({r["method"] for r in board if r["set"] == s}):
            rs = sorted((r for r in board if r["set"] == s and r["method"] == method), key=lambda r: r["k"])
            ax.errorbar(
                [r["k"] for r in rs],
                [r["accuracy"] for r in rs],
                yerr=[r["accuracy_std"] for r in rs],
                marker="o",
                capsize=3,
                label=method,
            )
        ax.set_xscale("log", base=2)
        ax.set_xlabel("shots per class (k)")
        ax.set_ylabel("query accuracy")
        ax.set_title(s)
    if board:
        axes[-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return png_bytes(fig)


def accuracy_vs_robustness(board: Sequence[Mapping[str, Any]]) -> bytes:
    """One panel per set, one point per (method, k): accuracy against the attack-accuracy delta
    vs the unadapted backbone (0 = as robust as the prototype head); up and right is better."""
    sets = sorted({r["set"] for r in board})
    fig, axes = figure_row(len(sets), width=4.4, pad=1.6)
    for ax, s in zip(axes, sets or ["(no rows)"], strict=False):
        ax.axvline(0.0, color="grey", lw=0.8, ls="--")
        methods = sorted({r["method"] for r in board if r["set"] == s})
        for method in methods:
            rs = [r for r in board if r["set"] == s and r["method"] == method and r["delta_attack"] is not None]
            if not rs:
                continue
            ax.scatter([r["delta_attack"] for r in rs], [r["accuracy"] for r in rs], label=method)
            for r in rs:
                ax.annotate(f"k={r['k']}", (r["delta_attack"], r["accuracy"]), fontsize=6)
        ax.set_xlabel("Δ attack accuracy vs unadapted")
        ax.set_ylabel("query accuracy")
        ax.set_title(s)
        if not any(r["delta_attack"] is not None for r in board if r["set"] == s):
            ax.text(0.5, 0.5, "robustness off", transform=ax.transAxes, ha="center")
    if any(r["delta_attack"] is not None for r in board):
        axes[-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return png_bytes(fig)


__all__ = ["accuracy_vs_robustness", "accuracy_vs_shots"]
