"""Report sections of the ``fewshot_adapt`` flow: a run's page (leaderboard, plots) and its part
of the combined leaderboard. The numbers are the stored stages (no second computation)."""

from __future__ import annotations

from typing import Any

from trustflow import names
from trustflow.data import schemas as S
from trustflow.tasks.fewshot.stages import ACCURACY_PNG, ROBUSTNESS_PNG, edit_summary
from trustflow.tasks.report.html import Column, Html, Section, join, key_figures, note, table
from trustflow.tasks.report.sections import (
    ACC,
    BOARD_SECTIONS,
    RUN_SECTIONS,
    RunView,
    per_run_boards,
    plots_section,
    unknown_stages,
)

STAGES = {names.EPISODES: S.FEWSHOT_EPISODES, names.LEADERBOARD: S.FEWSHOT_LEADERBOARD}
FEWSHOT_PLOTS = {
    ACCURACY_PNG: "Query accuracy against shots per class, a line per method (error bars: std over seeds)",
    ROBUSTNESS_PNG: "Accuracy against the attack-accuracy delta vs the unadapted backbone, a point per (method, k)",
}
DELTA = "+.3f"
BOARD_COLUMNS = [
    Column("set"),
    Column("k"),
    Column("method"),
    Column("seeds"),
    Column("accuracy", "accuracy", ACC),
    Column("accuracy_std", "± std", ACC),
    Column("robust_accuracy", "attack accuracy", ACC),
    Column("delta_attack", "Δ attack", DELTA),
    Column("delta_corruption", "Δ corruption", DELTA),
    Column("mce_vs_baseline", "mCE / unadapted", ".2f"),
    Column("fit_seconds", "fit s", ".2f"),
]
EDIT_COLUMNS = [
    Column("delta_edited", "Δ edited acc", DELTA),
    Column("delta_edit_drop", "Δ edit drop", DELTA),
]
ABOUT_EDITS = (
    "Edits set (ImageNet-E style): the few-shot task is the edit set's originals; Δ edited acc = adapted − "
    "unadapted accuracy on the test objects' edited images, Δ edit drop = adapted − unadapted drop "
    "(original − edited accuracy), both averaged over attributes (> 0 drop: the adapted model loses more)."
)


def with_edits(board: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[Column]]:
    """The rows with their edit deltas and the columns to show (the edit columns only when a
    row has them)."""
    rows = []
    for r in board:
        e = edit_summary(r)
        rows.append({**r, "delta_edited": e and e[0], "delta_edit_drop": e and e[1]})
    shown = any(r["delta_edited"] is not None for r in rows)
    return rows, BOARD_COLUMNS + (EDIT_COLUMNS if shown else [])


ABOUT = (
    "Accuracy: mean and std over seeds of the query accuracy (the same query images in every episode of a set). "
    "Δ = adapted − unadapted (the nearest-class-mean head on the frozen backbone, same episode), for the "
    "mean attack accuracy and the mean corruption accuracy; mCE / unadapted < 1: fewer corruption errors."
)


@RUN_SECTIONS.register(names.FEWSHOT_ADAPT)
def fewshot_sections(run: RunView) -> list[Section]:
    """Key figures, the leaderboard and the plots."""
    sections: list[Section] = []
    if run.has(names.LEADERBOARD, S.FEWSHOT_LEADERBOARD):
        board = run.rows(names.LEADERBOARD)
        config = run.attrs(names.EPISODES).get("config", {})
        figures: list[tuple[str, Any, str]] = [
            ("Backbone", config.get("backbone", "?"), f"{config.get('epochs', '?')} epochs"),
            ("Episodes", sum(int(r["seeds"]) for r in board), f"{len({r['method'] for r in board})} methods"),
        ]
        best = max(board, key=lambda r: (r["k"], r["accuracy"]), default=None)
        if best:
            figures.append(("Best at largest k", f"{best['accuracy']:.3f}", f"{best['method']} on {best['set']}"))
        rows, columns = with_edits(board)
        about = [note(ABOUT)] + ([note(ABOUT_EDITS)] if len(columns) > len(BOARD_COLUMNS) else [])
        body: list[Html] = [key_figures(figures), *about, table(rows, columns)]
        sections.append(Section("Few-shot adaptation", join(body)))
    return sections + plots_section(run, FEWSHOT_PLOTS) + unknown_stages(run, STAGES)


@BOARD_SECTIONS.register(names.FEWSHOT_ADAPT)
def fewshot_board(runs: list[RunView]) -> list[Section]:
    """Each run's leaderboard, newest first."""
    return per_run_boards(
        runs,
        S.FEWSHOT_LEADERBOARD,
        names.FLOW_TITLES[names.FEWSHOT_ADAPT],
        "no few-shot run in this store",
        lambda run: (None, table(*with_edits(run.rows(names.LEADERBOARD)))),
    )
