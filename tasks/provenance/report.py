"""Report sections of the provenance flows.

``fingerprint_trace``: the ρ table (suspects × sources), tracing accuracy, threshold and
ROC AUC per method (ours, weight cosine, linear CKA), the verdicts and the ρ-vs-learning-rate
plot. ``fingerprint_embed``: the registered models and their fingerprints' shapes. The
numbers are the ones the flow stored (``verdicts`` stage attrs carry the per-method summary).
"""

from __future__ import annotations

from typing import Any

from trustflow import names
from trustflow.data import schemas as S
from trustflow.tasks.provenance import plots
from trustflow.tasks.report.html import EMPTY, Column, Section, join, key_figures, note, table
from trustflow.tasks.report.sections import (
    RUN_SECTIONS,
    RunView,
    generic_sections,
    pivot,
    pivot_columns,
    plots_section,
    unknown_stages,
)

TRACE_PLOTS = {plots.RHO_VS_LR: "ρ against the true source vs the attack's fine-tuning learning rate, per attack"}
SCORE = ".3f"


def _num(value: Any) -> str:
    return EMPTY if value is None else f"{value:{SCORE}}"


@RUN_SECTIONS.register(names.FINGERPRINT_TRACE)
def trace_sections(run: RunView) -> list[Section]:
    """ρ table, per-method tracing accuracy and AUC, verdicts, plot."""
    if not run.has(names.SCORES, S.FINGERPRINT_SCORES):
        return generic_sections(run)
    scores = run.rows(names.SCORES)
    rho, sources = pivot(
        sorted((r for r in scores if r["method"] == "ours"), key=lambda r: (r["suspect"], r["source"])),
        "suspect",
        "source",
        "score",
    )
    verdicts = run.rows(names.VERDICTS) if run.has(names.VERDICTS, S.FINGERPRINT_VERDICTS) else []
    ours = {v["suspect"]: v for v in verdicts if v["method"] == "ours"}
    for r in rho:
        v = ours.get(r["suspect"], {})
        r["traced_to"] = v.get("traced_to") or "none"
        r["true_source"] = (v.get("true_source") or "none") if v.get("known") else "unknown"
    summary: dict[str, Any] = run.attrs(names.VERDICTS).get("summary", {}) if verdicts else {}
    methods = [
        {"method": m, "threshold": s.get("threshold"), "accuracy": s.get("accuracy"), "auc": s.get("auc")}
        for m, s in summary.items()
    ]
    groups: dict[str, dict[str, Any]] = {}
    for m, s in summary.items():
        for g, acc in (s.get("per_group") or {}).items():
            groups.setdefault(g, {"group": g})[f"c:{m}"] = acc
    known = sum(1 for v in ours.values() if v["known"])
    figures: list[tuple[str, Any, str]] = [
        ("Sources", len(sources), ""),
        ("Suspects", len(rho), f"{known} of known truth"),
    ]
    for row in methods:
        figures.append((f"Tracing accuracy ({row['method']})", _num(row["accuracy"]), f"AUC {_num(row['auc'])}"))
    sections = [
        Section(
            "Fingerprint score ρ",
            join(
                [
                    key_figures(figures),
                    note("ρ of each suspect (rows) against each source; verdicts of our method."),
                    table(
                        rho,
                        [
                            Column("suspect"),
                            *pivot_columns(sources, SCORE),
                            Column("traced_to", "traced to"),
                            Column("true_source", "true source"),
                        ],
                    ),
                ]
            ),
        ),
        Section(
            "Tracing per method",
            join(
                [
                    note("Threshold calibrated on the suspects of known truth; ROC AUC over (source, suspect) pairs."),
                    table(
                        methods,
                        [
                            Column("method"),
                            Column("threshold", spec=SCORE),
                            Column("accuracy", "tracing accuracy", _num, numeric=True),
                            Column("auc", "ROC AUC", _num, numeric=True),
                        ],
                        empty="no verdicts",
                    ),
                    table(
                        list(groups.values()),
                        [Column("group", "suspect group"), *pivot_columns(list(summary), SCORE)],
                        empty="no suspect of known truth",
                    ),
                ]
            ),
        ),
    ]
    known_stages = {names.SCORES: S.FINGERPRINT_SCORES, names.VERDICTS: S.FINGERPRINT_VERDICTS}
    return sections + plots_section(run, TRACE_PLOTS) + unknown_stages(run, known_stages)


@RUN_SECTIONS.register(names.FINGERPRINT_EMBED)
def embed_sections(run: RunView) -> list[Section]:
    """The registered models, each with its layer, grid and fingerprint size."""
    if not run.has(names.FINGERPRINT, S.FINGERPRINT):
        return generic_sections(run)
    per: dict[str, dict[str, Any]] = {}
    for r in run.rows(names.FINGERPRINT, ["model", "layer", "filter", "channel", "grid_m", "grid_n"]):
        p = per.setdefault(
            r["model"], {"model": r["model"], "layer": r["layer"], "grid": f"{r['grid_m']}×{r['grid_n']}", "rows": 0}
        )
        p["rows"] += 1
        p["filters"] = max(p.get("filters", 0), r["filter"] + 1)
        p["channels"] = max(p.get("channels", 0), r["channel"] + 1)
    cols = [Column("model"), Column("layer"), Column("grid"), Column("filters"), Column("channels"), Column("rows")]
    return [
        Section("Registered fingerprints", table(list(per.values()), cols)),
        *unknown_stages(run, {names.FINGERPRINT: S.FINGERPRINT}),
    ]
