"""Report sections of the robust vision flows: one run's page and the leaderboard part.

``adversarial_train``: final and best probe accuracy, catastrophic-overfitting epochs, the
per-epoch table and the accuracy plot. ``robustness_evaluate``: accuracy per attack and
budget and per corruption and severity; the numbers come from the domain's own
``evaluate.summary`` and the attacks are named by ``evaluate.attack_label``, as everywhere.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from typing import Any

from trustflow import names
from trustflow.data import schemas as S
from trustflow.tasks.report.html import (
    EMPTY,
    Column,
    Section,
    definitions,
    heading,
    join,
    key_figures,
    note,
    stacked,
    table,
)
from trustflow.tasks.report.sections import (
    ACC,
    BOARD_SECTIONS,
    RUN_SECTIONS,
    RunView,
    attr_pairs,
    generic_sections,
    pivot,
    pivot_columns,
    plots_section,
    run_cell,
    unknown_stages,
)
from trustflow.tasks.robustness import plots
from trustflow.tasks.robustness.evaluate import attack_key, attack_label, attack_order, format_eps, summary

# ---------------------------------------------------------------- adversarial training

TRAIN_PLOTS = {plots.ACCURACY_PER_EPOCH: "Clean, FGSM and PGD-10 accuracy on the held-out probe batch per epoch"}
EPOCH_COLUMNS = [
    Column("epoch"),
    Column("loss", spec=".4f"),
    Column("train_clean_acc", "train clean", ACC),
    Column("train_adv_acc", "train adv", ACC),
    Column("probe_clean_acc", "clean", ACC),
    Column("fgsm_acc", "FGSM", ACC),
    Column("pgd_acc", "PGD-10", ACC),
    Column("co_flag", "catastrophic overfitting"),
    Column("evaluated"),
    Column("lr", spec=".4g"),
    Column("samples_per_s", "samples/s", ",.0f"),
    Column("seconds", "seconds", ".1f"),
]


def training_summary(run: RunView) -> dict[str, Any] | None:
    """Final and best epoch of a training run; best is chosen as the trainer does: the highest
    PGD-10 probe accuracy among epochs not flagged for catastrophic overfitting."""
    if not run.has(names.EPOCHS, S.TRAIN_EPOCHS):
        return None
    rows = sorted(run.rows(names.EPOCHS), key=lambda r: r["epoch"])
    if not rows:
        return None
    last, best = rows[-1], max([r for r in rows if not r["co"]] or rows, key=lambda r: r["pgd_acc"])
    return {
        "run": run.run_id,
        "method": last["method"],
        "arch": last["arch"],
        "dataset": last["dataset"],
        "epochs": len(rows),
        "clean": last["probe_clean_acc"],
        "fgsm": last["fgsm_acc"],
        "pgd": last["pgd_acc"],
        "best_pgd": best["pgd_acc"],
        "best_epoch": best["epoch"],
        "co_epochs": ", ".join(str(r["epoch"]) for r in rows if r["co"]) or "none",
        "written": run.stages[names.EPOCHS].created_at,
        "rows": rows,
    }


@RUN_SECTIONS.register(names.ADVERSARIAL_TRAIN)
def training_sections(run: RunView) -> list[Section]:
    """Final and best robust accuracy, catastrophic-overfitting epochs, the per-epoch table."""
    summary = training_summary(run)
    if summary is None:
        return generic_sections(run)
    figures: list[tuple[str, Any, str]] = [  # (label, value, hint); an empty hint shows none
        ("Method", summary["method"], ""),
        ("Model", summary["arch"], ""),
        ("Dataset", summary["dataset"], ""),
        ("Final clean accuracy", f"{summary['clean']:{ACC}}", ""),
        ("Final PGD-10 accuracy", f"{summary['pgd']:{ACC}}", ""),
        ("Best PGD-10 accuracy", f"{summary['best_pgd']:{ACC}}", f"epoch {summary['best_epoch']}"),
        ("Catastrophic overfitting at epochs", summary["co_epochs"], ""),
    ]
    rows = [
        {**r, "co_flag": ("rolled back: " if r["rolled_back"] else "") + (r["co_reason"] or "yes") if r["co"] else ""}
        for r in summary["rows"]
    ]
    body = [key_figures(figures), table(rows, EPOCH_COLUMNS)]
    job = run.attrs(names.EPOCHS).get("job")
    if isinstance(job, dict):
        body += [heading(3, "Training job"), definitions(attr_pairs(job))]
    return [
        Section("Training", join(body)),
        *plots_section(run, TRAIN_PLOTS),
        *unknown_stages(run, {names.EPOCHS: S.TRAIN_EPOCHS}),
    ]


@BOARD_SECTIONS.register(names.ADVERSARIAL_TRAIN)
def training_board(runs: list[RunView]) -> list[Section]:
    summaries = [s for s in (training_summary(r) for r in runs) if s is not None]
    summaries.sort(key=lambda s: s["written"], reverse=True)
    rows = [
        {
            **s,
            "run": run_cell(s["run"], s["written"]),
            "best": stacked(f"{s['best_pgd']:{ACC}}", f"epoch {s['best_epoch']}"),
        }
        for s in summaries
    ]
    cols = [
        Column("run", "run · trained"),
        Column("method"),
        Column("arch", "model"),
        Column("dataset"),
        Column("epochs"),
        Column("clean", "final clean", ACC),
        Column("fgsm", "final FGSM", ACC),
        Column("pgd", "final PGD-10", ACC),
        Column("best", "best PGD-10", numeric=True),
        Column("co_epochs", "catastrophic overfitting (epochs)"),
    ]
    return [Section("Adversarial training runs", table(rows, cols, empty="no training run in this store"))]


# ---------------------------------------------------------------- robustness evaluation


def _eps_cell(value: Any) -> str:
    return EMPTY if value is None or (isinstance(value, float) and math.isnan(value)) else format_eps(value)


def robustness_summary(run: RunView) -> dict[str, Any] | None:
    """``evaluate.summary`` of one run's results, with the rows and labels a page shows."""
    if not run.has(names.RESULTS, S.ROBUSTNESS_RESULTS):
        return None
    rows = run.rows(names.RESULTS)
    if not rows:
        return None
    s = summary(rows)
    attack_rows = sorted((r for r in rows if r["attack"] != "corruption"), key=attack_order)
    robust = [r for r in attack_rows if r["attack"] != "clean"]
    accuracy: Mapping[str, float] = s["robust_accuracy"]
    return {
        "run": run.run_id,
        "model": s["model"],
        "dataset": s["dataset"],
        "written": run.stages[names.RESULTS].created_at,
        "clean": s["clean_accuracy"],
        "images": max(r["n"] for r in rows),
        "attacks": {attack_label(r): accuracy[attack_key(r)] for r in robust},
        "worst": min(robust, key=lambda r: accuracy[attack_key(r)]) if robust else None,
        "corruption_mean": s["mean_corruption_accuracy"],
        "attack_rows": attack_rows,
        "corruption_rows": [r for r in rows if r["attack"] == "corruption"],
    }


@RUN_SECTIONS.register(names.ROBUSTNESS_EVALUATE)
def robustness_sections(run: RunView) -> list[Section]:
    """Accuracy under each attack and budget, and per corruption and severity."""
    s = robustness_summary(run)
    if s is None:
        return generic_sections(run)
    figures: list[tuple[str, Any, str]] = [  # (label, value, hint); an empty hint shows none
        ("Model", s["model"], ""),
        ("Dataset", s["dataset"], ""),
        ("Images", s["images"], ""),
        ("Clean accuracy", f"{s['clean']:{ACC}}" if s["clean"] is not None else EMPTY, ""),
    ]
    if s["worst"] is not None:
        figures.append(("Lowest robust accuracy", f"{s['worst']['accuracy']:{ACC}}", attack_label(s["worst"])))
    if s["corruption_mean"] is not None:
        figures.append(
            ("Mean corruption accuracy", f"{s['corruption_mean']:{ACC}}", "mean over corruptions and severities")
        )
    cols = [
        Column("attack"),
        Column("norm"),
        Column("eps", "ε", _eps_cell, numeric=True),
        Column("n", "images"),
        Column("correct"),
        Column("accuracy", spec=ACC),
        Column("seconds", spec=".1f"),
    ]
    sections = [
        Section(
            "Robust accuracy", join([key_figures(figures), table(s["attack_rows"], cols, empty="no attack evaluated")])
        )
    ]
    if s["corruption_rows"]:
        rows, severities = pivot(
            sorted(s["corruption_rows"], key=lambda r: (r["corruption"], r["severity"])),
            "corruption",
            "severity",
            "accuracy",
        )
        for r in rows:
            r["mean"] = statistics.fmean(v for k, v in r.items() if k.startswith("c:"))
        cols = [
            Column("corruption"),
            *pivot_columns(sorted(severities), ACC, lambda v: f"severity {v}"),
            Column("mean", spec=ACC),
        ]
        sections.append(
            Section("Common corruptions", join([note("Accuracy per corruption and severity."), table(rows, cols)]))
        )
    return sections + plots_section(run) + unknown_stages(run, {names.RESULTS: S.ROBUSTNESS_RESULTS})


@BOARD_SECTIONS.register(names.ROBUSTNESS_EVALUATE)
def robustness_board(runs: list[RunView]) -> list[Section]:
    summaries = [s for s in (robustness_summary(r) for r in runs) if s is not None]
    summaries.sort(key=lambda s: s["written"], reverse=True)
    labels: list[str] = []
    for s in summaries:
        labels += [k for k in s["attacks"] if k not in labels]
    rows = [
        {**s, "run": run_cell(s["run"], s["written"]), **{f"c:{k}": v for k, v in s["attacks"].items()}}
        for s in summaries
    ]
    cols = [
        Column("run", "run · evaluated"),
        Column("model"),
        Column("dataset"),
        Column("images"),
        Column("clean", spec=ACC),
        *pivot_columns(labels, ACC),
        Column("corruption_mean", "mean corruption", ACC),
    ]
    return [
        Section(
            "Robustness evaluations",
            join(
                [
                    note("Accuracy (fraction correct) of every robustness run, newest first."),
                    table(rows, cols, empty="no robustness evaluation in this store"),
                ]
            ),
        )
    ]
