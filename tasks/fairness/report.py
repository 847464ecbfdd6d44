"""Report sections of the fairness flows: an evaluation's page, its leaderboard part, and a
training run's page. The numbers are the stored stages (no second computation)."""

from __future__ import annotations

import json
from typing import Any

from trustflow import names
from trustflow.data import schemas as S
from trustflow.tasks.fairness.stages import ALL, GROUP_ERRORS_PNG, TRADEOFF_PNG
from trustflow.tasks.report.html import EMPTY, Column, Html, Section, join, key_figures, note, table
from trustflow.tasks.report.sections import (
    ACC,
    BOARD_SECTIONS,
    RUN_SECTIONS,
    RunView,
    ci,
    per_run_boards,
    plots_section,
    unknown_stages,
)

EVAL_STAGES = {names.LEADERBOARD: S.FAIRNESS_LEADERBOARD, names.METRICS: S.FAIRNESS_METRICS}
TRAIN_STAGES = {names.EPOCHS: S.FAIRNESS_TRAIN_EPOCHS}
FAIRNESS_PLOTS = {
    TRADEOFF_PNG: "Utility vs fairness: accuracy against the equalised-odds gap (95 % intervals); up and left is better",
    GROUP_ERRORS_PNG: "Error rate per attribute group, a bar per model",
}
GAP = ".3f"
BOARD_COLUMNS = [
    Column("model"),
    Column("method"),
    Column("dataset"),
    Column("rows"),
    Column("accuracy", "accuracy", ACC),
    Column("acc_ci", "95 % interval", numeric=True),
    Column("macro_f1", "macro-F1", ACC),
    Column("dp_gap", "DP gap", GAP),
    Column("eo_gap", "EO gap", GAP),
    Column("eo_ci", "95 % interval", numeric=True),
    Column("fped", "FPED", GAP),
    Column("fned", "FNED", GAP),
    Column("flip_rate", "flip rate (EEC)", GAP),
    Column("leakage", "leakage", "+.3f"),
]
GROUP_COLUMNS = [
    Column("model"),
    Column("dataset"),
    Column("group"),
    Column("n"),
    Column("accuracy", "accuracy", ACC),
    Column("tpr", "TPR", GAP),
    Column("fpr", "FPR", GAP),
    Column("positive_rate", "positive rate", GAP),
]


def board_view(board: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {**r, "acc_ci": ci(r["accuracy_lo"], r["accuracy_hi"], ACC), "eo_ci": ci(r["eo_gap_lo"], r["eo_gap_hi"], GAP)}
        for r in board
    ]


def group_rows(metrics: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (model, dataset, group) from the long metric rows."""
    cells: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in metrics:
        if r["group"] == ALL:
            continue
        cell = cells.setdefault(
            (r["model"], r["dataset"], r["group"]),
            {"model": r["model"], "dataset": r["dataset"], "group": r["group"], "n": r["n"]},
        )
        cell[r["metric"]] = r["value"]
    return [cells[k] for k in sorted(cells)]


@RUN_SECTIONS.register(names.FAIRNESS_EVALUATE)
def fairness_sections(run: RunView) -> list[Section]:
    """Leaderboard with intervals, per-group rates, plots."""
    sections: list[Section] = []
    if run.has(names.LEADERBOARD, S.FAIRNESS_LEADERBOARD):
        board = run.rows(names.LEADERBOARD)
        fairest = min((r for r in board if r["eo_gap"] is not None), key=lambda r: r["eo_gap"], default=None)
        figures: list[tuple[str, Any, str]] = [("Models", len({r["model"] for r in board}), "")]
        if fairest:
            figures.append(
                ("Smallest EO gap", f"{fairest['eo_gap']:.3f}", f"{fairest['method']} on {fairest['dataset']}")
            )
        body: list[Html] = [
            key_figures(figures),
            note(
                "EO gap = max(TPR gap, FPR gap) across attribute groups; DP gap = range of the positive rate; "
                "flip rate = share of EEC template pairs whose prediction changes with the group term only; "
                "leakage = a fresh linear probe's attribute accuracy minus the majority rate. "
                "Intervals: 95 % percentile bootstrap over test rows."
            ),
            table(board_view(board), BOARD_COLUMNS),
        ]
        sections.append(Section("Fairness", join(body)))
    if run.has(names.METRICS, S.FAIRNESS_METRICS):
        sections.append(Section("Per-group rates", table(group_rows(run.rows(names.METRICS)), GROUP_COLUMNS)))
    return sections + plots_section(run, FAIRNESS_PLOTS) + unknown_stages(run, EVAL_STAGES)


@BOARD_SECTIONS.register(names.FAIRNESS_EVALUATE)
def fairness_board(runs: list[RunView]) -> list[Section]:
    """Each evaluation's leaderboard, newest first."""
    return per_run_boards(
        runs,
        S.FAIRNESS_LEADERBOARD,
        "Fairness of text classifiers",
        "no fairness evaluation in this store",
        lambda run: (None, table(board_view(run.rows(names.LEADERBOARD)), BOARD_COLUMNS)),
    )


@RUN_SECTIONS.register(names.FAIRNESS_TRAIN)
def training_sections(run: RunView) -> list[Section]:
    """The run's job and its per-epoch losses."""
    if not run.has(names.EPOCHS, S.FAIRNESS_TRAIN_EPOCHS):
        return unknown_stages(run, TRAIN_STAGES)
    summary = run.attrs(names.EPOCHS).get("summary", {})
    rows = [{**r, **{f"loss:{k}": v for k, v in json.loads(r["losses"]).items()}} for r in run.rows(names.EPOCHS)]
    losses = sorted({k for r in rows for k in r if k.startswith("loss:")})
    figures: list[tuple[str, Any, str]] = [
        ("Method", summary.get("method", EMPTY), ""),
        ("Dataset", summary.get("dataset", EMPTY), ""),
        (
            "Samples/s",
            f"{float(summary.get('samples_per_s', 0.0)):.1f}",
            f"{summary.get('workers', '?')} Ray Train workers",
        ),
    ]
    columns = [Column("epoch"), *[Column(k, k.removeprefix("loss:"), ".4f") for k in losses]]
    return [Section("Fairness fine-tuning", join([key_figures(figures), table(rows, columns)]))] + unknown_stages(
        run, TRAIN_STAGES
    )
