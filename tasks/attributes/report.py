"""Report sections of ``attribute_robustness``: one evaluation's page and its leaderboard part.

The numbers are the ``attribute_leaderboard`` stage as ``metrics.leaderboard`` wrote it (no
second computation). A predictions run (``infer-…``) gets a short accuracy table.
"""

from __future__ import annotations

from typing import Any

from trustflow import names
from trustflow.data import schemas as S
from trustflow.tasks.attributes import plots
from trustflow.tasks.attributes.metrics import ALL_LEVELS, ORIGINAL, mean_drops
from trustflow.tasks.report.html import EMPTY, Column, Html, Section, join, key_figures, note, table
from trustflow.tasks.report.sections import (
    ACC,
    BOARD_SECTIONS,
    RUN_SECTIONS,
    RunView,
    ci,
    per_run_boards,
    pivot_columns,
    plots_section,
    unknown_stages,
)

ATTRIBUTE_STAGES = {
    names.LEADERBOARD: S.ATTRIBUTE_LEADERBOARD,
    names.PREDICTIONS: S.ATTRIBUTE_PREDICTIONS,
    names.EDITS: S.ATTRIBUTE_EDITS,
}
ATTRIBUTE_PLOTS = {plots.ACCURACY_VS_LEVEL: "Top-1 accuracy per edit level, a line per model; dotted: the originals"}
DROP = "+.3f"
LEVEL_COLUMNS = [
    Column("model"),
    Column("attribute"),
    Column("level"),
    Column("value_mean", "realised value", ".3g"),
    Column("objects"),
    Column("top1", "top-1", ACC),
    Column("top5", "top-5", ACC),
    Column("top1_original", "top-1 original", ACC),
    Column("drop_top1", "drop", DROP),
    Column("interval", "95 % interval", numeric=True),
    Column("skipped"),
]


def drop_table(board: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """One row per model: original top-1 and the pooled drop per attribute."""
    drops = mean_drops(board)
    attributes = sorted({a for per in drops.values() for a in per})
    rows = []
    for model in sorted({r["model"] for r in board}):
        orig = next((r for r in board if r["model"] == model and r["attribute"] == ORIGINAL), None)
        row: dict[str, Any] = {"model": model, "original": orig["top1"] if orig else None}
        row.update({f"c:{a}": drops.get(model, {}).get(a) for a in attributes})
        per = [v for v in drops.get(model, {}).values()]
        row["mean"] = sum(per) / len(per) if per else None
        rows.append(row)
    return rows, attributes


def _drop_columns(attributes: list[str]) -> list[Column]:
    return [
        Column("model"),
        Column("original", "top-1 original", ACC),
        *pivot_columns(attributes, DROP, lambda a: f"drop: {a}"),
        Column("mean", "mean drop", DROP),
    ]


def board_rows(run: RunView) -> list[dict[str, Any]]:
    return run.rows(names.LEADERBOARD)


@RUN_SECTIONS.register(names.ATTRIBUTE_ROBUSTNESS)
def attribute_sections(run: RunView) -> list[Section]:
    """Drop per model and attribute, accuracy per level with paired-bootstrap intervals, plots."""
    sections: list[Section] = []
    if run.has(names.LEADERBOARD, S.ATTRIBUTE_LEADERBOARD):
        board = board_rows(run)
        rows, attributes = drop_table(board)
        attrs = run.attrs(names.LEADERBOARD)
        worst = max(
            ((a, r["model"], r[f"c:{a}"]) for r in rows for a in attributes if r.get(f"c:{a}") is not None),
            key=lambda t: t[2],
            default=None,
        )
        figures: list[tuple[str, Any, str]] = [
            ("Edits", attrs.get("edits", EMPTY), ""),
            ("Models", len(rows), ""),
        ]
        if worst:
            figures.append(("Largest drop", f"{worst[2]:+.3f}", f"{worst[0]}, {worst[1]}"))
        body: list[Html] = [
            key_figures(figures),
            note(
                "Drop = top-1 on the originals − top-1 on the edits, on the same objects; "
                "per attribute pooled over its levels (ImageNet-E reports 9.23 % for a small background change)."
            ),
            table(rows, _drop_columns(attributes)),
        ]
        sections.append(Section("Attribute robustness", join(body)))
        levels = [
            {**r, "interval": ci(r["drop_low"], r["drop_high"], DROP)}
            for r in board
            if r["attribute"] != ORIGINAL and r["level"] != ALL_LEVELS
        ]
        sections.append(
            Section(
                "Accuracy per edit level",
                join(
                    [
                        note("95 % interval: objects resampled 1000 times, each with its original."),
                        table(levels, LEVEL_COLUMNS),
                    ]
                ),
            )
        )
    if run.has(names.PREDICTIONS, S.ATTRIBUTE_PREDICTIONS):
        sections.append(Section("Predictions", predictions_table(run)))
    return sections + plots_section(run, ATTRIBUTE_PLOTS) + unknown_stages(run, ATTRIBUTE_STAGES)


def predictions_table(run: RunView) -> Html:
    """Per model and attribute: images and top-1 (all levels together)."""
    t = run.read(names.PREDICTIONS, ["model", "attribute", "hit1"])
    grouped = t.group_by(["model", "attribute"]).aggregate([("hit1", "count"), ("hit1", "sum")]).to_pylist()
    rows = sorted(
        ({"model": r["model"], "attribute": r["attribute"], "images": r["hit1_count"], "top1": r["hit1_sum"] / r["hit1_count"]}
         for r in grouped if r["hit1_count"]),
        key=lambda r: (r["model"], r["attribute"]),
    )  # fmt: skip
    return table(rows, [Column("model"), Column("attribute"), Column("images"), Column("top1", "top-1", ACC)])


@BOARD_SECTIONS.register(names.ATTRIBUTE_ROBUSTNESS)
def attribute_board(runs: list[RunView]) -> list[Section]:
    """Each evaluation's drop table, newest first (edits and models differ per run)."""

    def render(run: RunView) -> tuple[str, Html]:
        rows, attributes = drop_table(board_rows(run))
        return f"edits {run.attrs(names.LEADERBOARD).get('edits', EMPTY)}", table(rows, _drop_columns(attributes))

    return per_run_boards(
        runs,
        S.ATTRIBUTE_LEADERBOARD,
        "Attribute robustness (ImageNet-E style)",
        "no attribute robustness evaluation in this store",
        render,
    )
