"""The model leaderboard (every model card evaluated so far) in ``trustflow report``."""

from __future__ import annotations

from typing import Any

from trustflow import names
from trustflow.data import schemas as S
from trustflow.tasks.report.html import Column, Html, Section, fmt, join, note, table
from trustflow.tasks.report.sections import ACC, BOARD_SECTIONS, PCT, RUN_SECTIONS, RunView, generic_sections


def model_board_rows(run: RunView) -> list[dict[str, Any]]:
    """The newest value per (model card, evaluation, metric)."""
    latest: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in run.rows(names.LEADERBOARD):
        key = (r["card_key"], r["evaluation"], r["metric"])
        if key not in latest or latest[key]["evaluated_at"] < r["evaluated_at"]:
            latest[key] = r
    rows = sorted(latest.values(), key=lambda r: (r["model_name"], r["evaluation"], r["metric"]))
    provenance = {r["card_key"]: provenance_cell(r) for r in rows if r["evaluation"] == "provenance"}
    return [
        {
            **r,
            "shown": fmt(r["value"], PCT if r["evaluation"] == "seval" else ACC),
            "provenance": provenance.get(r["card_key"], ""),
        }
        for r in rows
    ]


def provenance_cell(row: dict[str, Any]) -> str:
    """ "derived from X, ρ = …" (ρ above 0.5, the tracing default) or "no registered source"."""
    source = str(row["metric"]).removeprefix("rho vs ")
    rho = row["value"]
    if rho is not None and rho > 0.5:
        return f"derived from {source}, ρ = {rho:.2f}"
    return f"no registered source (closest {source}, ρ = {rho:.2f})"


MODEL_BOARD_COLUMNS = [
    Column("model_name", "model"),
    Column("kind"),
    Column("evaluation"),
    Column("metric"),
    Column("shown", "value", numeric=True),
    Column("run_id", "run"),
    Column("provenance"),
    Column("evaluated_at", "evaluated"),
]


@RUN_SECTIONS.register(names.CONTINUOUS_EVAL)
def continuous_sections(run: RunView) -> list[Section]:
    if not run.has(names.LEADERBOARD, S.MODEL_LEADERBOARD):
        return generic_sections(run)
    return [
        Section(
            "Model leaderboard",
            join(
                [
                    note("S-Eval metrics in percent, robustness accuracies as fractions."),
                    table(model_board_rows(run), MODEL_BOARD_COLUMNS),
                ]
            ),
        )
    ]


@BOARD_SECTIONS.register(names.CONTINUOUS_EVAL)
def continuous_board(runs: list[RunView]) -> list[Section]:
    body: list[Html] = []
    for run in runs:
        if run.has(names.LEADERBOARD, S.MODEL_LEADERBOARD):
            body.append(table(model_board_rows(run), MODEL_BOARD_COLUMNS))
    if not body:
        return []
    return [
        Section(
            "Continuously evaluated models", join([note("Latest value per model card, evaluation and metric."), *body])
        )
    ]
