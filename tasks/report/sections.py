"""What a report shows for each flow: one renderer per flow name, plus a generic fallback.

Two registries, both keyed by the flow name the store uses (``runs/<flow>/…``):

- ``RUN_SECTIONS``: ``RunView → [Section]`` for the page of one run;
- ``BOARD_SECTIONS``: ``[RunView] → [Section]`` for the flow's part of the combined
  leaderboard page (every run of that flow in the store).

A new flow gets its report with one ``@RUN_SECTIONS.register("<flow>")`` function; a flow
without one still gets a useful page (its stages and their first rows). Renderers check
each stage's schema name and version before trusting its columns, so a stage written by an
older or newer layout falls back to the generic listing instead of breaking the page.
"""

from __future__ import annotations

import importlib
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from trustflow.data import schemas as S
from trustflow.data.store import ArtifactStore, Manifest, StageRef
from trustflow.registry import Registry
from trustflow.tasks.report.html import (
    EMPTY,
    Column,
    Html,
    Section,
    definitions,
    fmt,
    fmt_bytes,
    fmt_eps,
    heading,
    image_png,
    join,
    key_figures,
    note,
    stacked,
    table,
    truncate,
)

PREVIEW_ROWS = 5


# ---------------------------------------------------------------- the data a renderer sees


@dataclass
class RunView:
    """One run's complete stages (those with a manifest) and its side files (plots, models)."""

    store: ArtifactStore
    flow: str
    run_id: str
    stages: dict[str, Manifest]

    @property
    def label(self) -> str:
        return f"{self.flow}/{self.run_id}"

    @property
    def written(self) -> datetime | None:
        return max((m.created_at for m in self.stages.values()), default=None)

    def has(self, stage: str, schema: S.VersionedSchema | None = None) -> bool:
        """The stage is complete (and, given ``schema``, written with that name and version)."""
        m = self.stages.get(stage)
        if m is None:
            return False
        return schema is None or (m.schema_name == schema.name and m.schema_version == schema.version)

    def ref(self, stage: str) -> StageRef:
        return StageRef(self.flow, self.run_id, stage)

    def read(self, stage: str, columns: list[str] | None = None) -> pa.Table:
        return self.store.read_table(self.ref(stage), columns=columns)

    def rows(self, stage: str, columns: list[str] | None = None) -> list[dict[str, Any]]:
        return self.read(stage, columns).to_pylist()

    def head(self, stage: str, n: int = PREVIEW_ROWS, columns: list[str] | None = None) -> list[dict[str, Any]]:
        return self.store.dataset(self.ref(stage)).head(n, columns=columns).to_pylist()

    def attrs(self, stage: str) -> dict[str, Any]:
        """The stage's manifest attrs without internal (``_``) keys."""
        m = self.stages.get(stage)
        return {k: v for k, v in (m.attrs if m else {}).items() if not k.startswith("_")}

    def files(self, folder: str) -> list[tuple[str, int]]:
        """(name, size) of the finished files in ``runs/<flow>/<run_id>/<folder>/``."""
        selector = pafs.FileSelector(self.store.path("runs", self.flow, self.run_id, folder), allow_not_found=True)
        try:
            infos = self.store.fs.get_file_info(selector)
        except FileNotFoundError:
            return []
        return sorted(
            (i.base_name, i.size or 0)
            for i in infos
            if i.type == pafs.FileType.File and not i.base_name.startswith(".")
        )

    def plots(self) -> list[tuple[str, bytes]]:
        return [
            (name, self.store.read_bytes(self.store.path("runs", self.flow, self.run_id, "plots", name)))
            for name, _ in self.files("plots")
            if name.lower().endswith(".png")
        ]


SectionRenderer = Callable[[RunView], list[Section]]
BoardRenderer = Callable[[list[RunView]], list[Section]]

RUN_SECTIONS: Registry[SectionRenderer] = Registry("run report section")
BOARD_SECTIONS: Registry[BoardRenderer] = Registry("leaderboard section")


def run_sections(run: RunView) -> list[Section]:
    """The flow's own sections, or the generic listing for a flow without a renderer."""
    render = RUN_SECTIONS.get(run.flow) if run.flow in RUN_SECTIONS else generic_sections
    return render(run)


# ---------------------------------------------------------------- shared pieces

PCT = ".1f"  # S-Eval rates are percentages
ACC = ".3f"  # accuracies and mAP are fractions


def ap(value: Any) -> str:
    """COCO writes -1 where a size bucket has no ground truth."""
    return "n/a" if value is None or value < 0 else f"{value:.3f}"


def ci(low: Any, high: Any, spec: str = PCT) -> str:
    if low is None or high is None:
        return EMPTY
    return f"{low:{spec}}–{high:{spec}}"


def pivot(
    rows: Iterable[Mapping[str, Any]], index: str, column: str, value: str
) -> tuple[list[dict[str, Any]], list[Any]]:
    """Long rows → one row per ``index`` with one key per ``column`` value (first-seen order)."""
    out: dict[Any, dict[str, Any]] = {}
    seen: list[Any] = []
    for r in rows:
        key, col = r[index], r[column]
        if col not in seen:
            seen.append(col)
        out.setdefault(key, {index: key})[f"c:{col}"] = r[value]
    return list(out.values()), seen


def run_cell(run_id: str, written: datetime) -> Html:
    """A run id with the day it was written underneath (saves a column on wide tables)."""
    return stacked(run_id, written.strftime("%Y-%m-%d"))


def pivot_columns(
    values: Sequence[Any], spec: str | Callable[[Any], str] | None, label: Callable[[Any], str] = str
) -> list[Column]:
    return [Column(f"c:{v}", label(v), spec, numeric=True) for v in values]


def plots_section(run: RunView, captions: Mapping[str, str] | None = None) -> list[Section]:
    """Every PNG under the run's ``plots/``, the known ones first with their captions."""
    captions = captions or {}
    order = list(captions)
    plots = sorted(run.plots(), key=lambda p: (order.index(p[0]) if p[0] in captions else len(order), p[0]))
    if not plots:
        return []
    return [Section("Plots", join(image_png(data, alt=name, caption=captions.get(name, name)) for name, data in plots))]


def stages_section(run: RunView) -> list[Section]:
    """What the store holds for the run: each stage's manifest, then its side files."""
    rows = []
    for name, m in sorted(run.stages.items()):
        rows.append(
            {
                "stage": name,
                "schema": f"{m.schema_name} v{m.schema_version}",
                "rows": m.rows,
                "parts": len(m.parts),
                "size": fmt_bytes(sum(p.bytes for p in m.parts)),
                "written": m.created_at,
                "version": m.trustflow_version or EMPTY,
                "keys": ", ".join(m.key_columns),
                "attrs": run.attrs(name) or None,
            }
        )
    body = [
        table(
            rows,
            [
                Column("stage"),
                Column("schema"),
                Column("rows"),
                Column("parts"),
                Column("size", numeric=True),
                Column("written"),
                Column("version", "trustflow"),
                Column("keys", "key columns"),
                Column("attrs"),
            ],
            empty="no complete stage (no manifest written yet)",
        )
    ]
    files = [
        {"file": f"{folder}/{name}", "size": fmt_bytes(size)}
        for folder in ("plots", "model")
        for name, size in run.files(folder)
    ]
    if files:
        body += [heading(3, "Other files"), table(files, [Column("file"), Column("size", numeric=True)])]
    return [Section("Stages and manifests", join(body))]


def preview(run: RunView, stage: str, n: int = PREVIEW_ROWS, columns: list[str] | None = None) -> Html:
    m = run.stages[stage]
    rows = run.head(stage, n, columns)
    caption = f"first {min(n, m.rows)} of {m.rows:,} rows · {m.schema_name} v{m.schema_version}"
    return table(rows, caption=caption, empty="empty stage")


def generic_sections(run: RunView) -> list[Section]:
    """Any flow: each stage's first rows, and its plots."""
    body = []
    for name in sorted(run.stages):
        body += [heading(3, name), preview(run, name)]
    sections = [Section("Stages", join(body) if body else note("no complete stage"))]
    return sections + plots_section(run)


def unknown_stages(run: RunView, known: Mapping[str, S.VersionedSchema]) -> list[Section]:
    """Stages a renderer does not show (other names, or another schema version): previewed."""
    others = [s for s in sorted(run.stages) if s not in known or not run.has(s, known[s])]
    if not others:
        return []
    body: list[Html] = []
    for name in others:
        body += [heading(3, name), preview(run, name)]
    return [Section("Other stages", join(body))]


def attr_pairs(attrs: Mapping[str, Any], limit: int = 200) -> list[tuple[str, Any]]:
    return [(k, truncate(fmt(v), limit) if not isinstance(v, (int, float)) else v) for k, v in attrs.items()]


# ---------------------------------------------------------------- S-Eval (tasks/seval/report.py)

# registers the S-Eval sections (until RUN_SECTIONS/BOARD_SECTIONS discover tasks/*/report.py)
importlib.import_module("trustflow.tasks.seval.report")


# ---------------------------------------------------------------- adversarial training

TRAIN_PLOTS = {"accuracy_per_epoch.png": "Clean, FGSM and PGD-10 accuracy on the held-out probe batch per epoch"}
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
    if not run.has("epochs", S.TRAIN_EPOCHS):
        return None
    rows = sorted(run.rows("epochs"), key=lambda r: r["epoch"])
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
        "written": run.stages["epochs"].created_at,
        "rows": rows,
    }


@RUN_SECTIONS.register("adversarial_train")
def training_sections(run: RunView) -> list[Section]:
    """Final and best robust accuracy, catastrophic-overfitting epochs, the per-epoch table."""
    summary = training_summary(run)
    if summary is None:
        return generic_sections(run)
    figures = [
        ("Method", summary["method"]),
        ("Model", summary["arch"]),
        ("Dataset", summary["dataset"]),
        ("Final clean accuracy", f"{summary['clean']:{ACC}}"),
        ("Final PGD-10 accuracy", f"{summary['pgd']:{ACC}}"),
        ("Best PGD-10 accuracy", f"{summary['best_pgd']:{ACC}}", f"epoch {summary['best_epoch']}"),
        ("Catastrophic overfitting at epochs", summary["co_epochs"]),
    ]
    rows = [
        {**r, "co_flag": ("rolled back: " if r["rolled_back"] else "") + (r["co_reason"] or "yes") if r["co"] else ""}
        for r in summary["rows"]
    ]
    body = [key_figures(figures), table(rows, EPOCH_COLUMNS)]
    job = run.attrs("epochs").get("job")
    if isinstance(job, dict):
        body += [heading(3, "Training job"), definitions(attr_pairs(job))]
    return [
        Section("Training", join(body)),
        *plots_section(run, TRAIN_PLOTS),
        *unknown_stages(run, {"epochs": S.TRAIN_EPOCHS}),
    ]


@BOARD_SECTIONS.register("adversarial_train")
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


def attack_label(r: Mapping[str, Any]) -> str:
    if r["attack"] == "clean":
        return "clean"
    parts = [r["attack"], r.get("norm") or "", f"ε={fmt_eps(r.get('eps'))}" if r.get("eps") is not None else ""]
    return " ".join(p for p in parts if p)


def robustness_summary(run: RunView) -> dict[str, Any] | None:
    """Clean accuracy, accuracy per attack and mean accuracy per corruption of one run."""
    if not run.has("results", S.ROBUSTNESS_RESULTS):
        return None
    rows = run.rows("results")
    if not rows:
        return None
    attacks = sorted(
        (r for r in rows if r["attack"] != "corruption"),
        key=lambda r: (r["attack"] != "clean", r["attack"], r["eps"] or 0),
    )
    corrupted = [r for r in rows if r["attack"] == "corruption"]
    per_corruption: dict[str, list[float]] = defaultdict(list)
    for r in corrupted:
        per_corruption[r["corruption"]].append(r["accuracy"])
    clean = next((r for r in attacks if r["attack"] == "clean"), None)
    robust = [r for r in attacks if r["attack"] != "clean"]
    return {
        "run": run.run_id,
        "model": rows[0]["model"],
        "dataset": rows[0]["dataset"],
        "written": run.stages["results"].created_at,
        "clean": clean["accuracy"] if clean else None,
        "images": max(r["n"] for r in rows),
        "attacks": {attack_label(r): r["accuracy"] for r in robust},
        "worst": min(robust, key=lambda r: r["accuracy"]) if robust else None,
        "corruption_mean": statistics.fmean(statistics.fmean(v) for v in per_corruption.values())
        if per_corruption
        else None,
        "attack_rows": attacks,
        "corruption_rows": corrupted,
    }


@RUN_SECTIONS.register("robustness_evaluate")
def robustness_sections(run: RunView) -> list[Section]:
    """Accuracy under each attack and budget, and per corruption and severity."""
    s = robustness_summary(run)
    if s is None:
        return generic_sections(run)
    figures: list[tuple[str, Any] | tuple[str, Any, str]] = [
        ("Model", s["model"]),
        ("Dataset", s["dataset"]),
        ("Images", s["images"]),
        ("Clean accuracy", f"{s['clean']:{ACC}}" if s["clean"] is not None else EMPTY),
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
        Column("eps", "ε", fmt_eps, numeric=True),
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
            values = [v for k, v in r.items() if k.startswith("c:")]
            r["mean"] = statistics.fmean(values)
        cols = [
            Column("corruption"),
            *pivot_columns(sorted(severities), ACC, lambda v: f"severity {v}"),
            Column("mean", spec=ACC),
        ]
        sections.append(
            Section("Common corruptions", join([note("Accuracy per corruption and severity."), table(rows, cols)]))
        )
    return sections + plots_section(run) + unknown_stages(run, {"results": S.ROBUSTNESS_RESULTS})


@BOARD_SECTIONS.register("robustness_evaluate")
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


# ---------------------------------------------------------------- detector robustness

DETECTOR_STAGES = {"metrics": S.DETECTION_METRICS, "leaderboard": S.DETECTOR_LEADERBOARD, "detections": S.DETECTIONS}
DETECTOR_PLOTS = {
    "id_vs_ood.png": "OOD vs ID mAP per detector; the dashed line is the trend OOD = a + b·ID",
    "per_domain.png": "AP per domain",
}
DETECTOR_BOARD_COLUMNS = [
    Column("detector"),
    Column("id_map", "ID mAP", ACC),
    Column("ood_map", "OOD mAP", ACC),
    Column("ood_domains", "OOD domains"),
    Column("relative_drop", "relative drop", ".1%"),
    Column("effective_robustness", "effective robustness", "+.3f"),
    Column("images_per_s", "images/s", ".1f"),
]


def detector_board_rows(run: RunView) -> list[dict[str, Any]]:
    return sorted(run.rows("leaderboard"), key=lambda r: -r["ood_map"])


@RUN_SECTIONS.register("detector_evaluate")
def detector_sections(run: RunView) -> list[Section]:
    """ID/OOD leaderboard with effective robustness, AP per domain, full COCO numbers, inference."""
    sections: list[Section] = []
    if run.has("leaderboard", S.DETECTOR_LEADERBOARD):
        board = detector_board_rows(run)
        attrs = run.attrs("leaderboard")
        figures: list[tuple[str, Any] | tuple[str, Any, str]] = [
            ("Dataset", attrs.get("dataset_id", EMPTY)),
            ("Detectors", len(board)),
        ]
        if board:
            top = board[0]
            figures.append(("Best OOD mAP", f"{top['ood_map']:{ACC}}", top["detector"]))
            figures.append(("Trend", f"{top['trend_a']:.3f} + {top['trend_b']:.3f}·ID", top["trend"]))
        body = [key_figures(figures), table(board, DETECTOR_BOARD_COLUMNS)]
        sections.append(Section("Leaderboard", join(body)))
    if run.has("metrics", S.DETECTION_METRICS):
        metrics = run.rows("metrics")
        rows, domains = pivot(metrics, "detector", "domain", "AP")
        per_domain = table(rows, [Column("detector"), *pivot_columns(domains, ap)])
        cols = [
            Column("detector"),
            Column("domain"),
            *[Column(k, spec=ap, numeric=True) for k in ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100")],
            Column("images"),
            Column("annotations"),
            Column("detections"),
        ]
        body = [
            note("AP at IoU 0.50:0.95 per domain (n/a: no ground truth for the bucket)."),
            per_domain,
            heading(3, "COCO metrics"),
            table(metrics, cols),
        ]
        sections.append(Section("Per-domain metrics", join(body)))
    if run.has("detections", S.DETECTIONS):
        sections.append(Section("Inference", inference_table(run)))
    return sections + plots_section(run, DETECTOR_PLOTS) + unknown_stages(run, DETECTOR_STAGES)


def inference_table(run: RunView) -> Html:
    """Per detector and domain: images, boxes found, mean score, time per image."""
    t = run.read("detections", ["detector", "domain", "scores", "seconds"])
    t = t.append_column("boxes", pc.list_value_length(t["scores"]).cast(pa.int64()))
    owner = pc.list_parent_indices(t["scores"])
    flat = pa.table(
        {
            "detector": pc.take(t["detector"], owner),
            "domain": pc.take(t["domain"], owner),
            "score": pc.list_flatten(t["scores"]),
        }
    )
    mean_score = {
        (r["detector"], r["domain"]): r["score_mean"]
        for r in flat.group_by(["detector", "domain"]).aggregate([("score", "mean")]).to_pylist()
    }
    grouped = t.group_by(["detector", "domain"]).aggregate(
        [("boxes", "sum"), ("seconds", "mean"), ("seconds", "count")]
    )
    rows = []
    for r in grouped.to_pylist():
        boxes = r["boxes_sum"]
        rows.append(
            {
                "detector": r["detector"],
                "domain": r["domain"],
                "images": r["seconds_count"],
                "boxes": boxes,
                "score": mean_score.get((r["detector"], r["domain"])),
                "ms": r["seconds_mean"] * 1000,
            }
        )
    rows.sort(key=lambda r: (r["detector"], r["domain"]))
    return table(
        rows,
        [
            Column("detector"),
            Column("domain"),
            Column("images"),
            Column("boxes", "detections"),
            Column("score", "mean score", ".3f"),
            Column("ms", "ms / image", ".1f"),
        ],
    )


@BOARD_SECTIONS.register("detector_evaluate")
def detector_board(runs: list[RunView]) -> list[Section]:
    """Each detector evaluation's leaderboard, newest first (datasets and domains differ per run)."""
    boards = sorted(
        (r for r in runs if r.has("leaderboard", S.DETECTOR_LEADERBOARD)),
        key=lambda r: r.stages["leaderboard"].created_at,
        reverse=True,
    )
    body: list[Html] = []
    for run in boards:
        m = run.stages["leaderboard"]
        title = f"{run.run_id} · dataset {run.attrs('leaderboard').get('dataset_id', EMPTY)} · {fmt(m.created_at)}"
        body += [heading(3, title), table(detector_board_rows(run), DETECTOR_BOARD_COLUMNS)]
    return [
        Section(
            "Detector robustness leaderboards", join(body) if body else note("no detector evaluation in this store")
        )
    ]


# ---------------------------------------------------------------- ingestion


@RUN_SECTIONS.register("ingest")
def ingest_sections(run: RunView) -> list[Section]:
    """The dataset's tables with their row counts, where it came from, its domains/splits/classes."""
    if not run.has("summary", S.DATASET_SUMMARY):
        return generic_sections(run)
    attrs = run.attrs("summary")
    figures = [
        ("Kind", attrs.get("kind", EMPTY)),
        ("Tables", run.stages["summary"].rows),
        ("Rows", sum(m.rows for name, m in run.stages.items() if name != "summary")),
    ]
    body = [
        key_figures(figures),
        definitions(attr_pairs(attrs)),
        table(
            run.rows("summary"),
            [Column("table"), Column("rows"), Column("schema_name", "schema"), Column("schema_version", "version")],
        ),
    ]
    for name in sorted(run.stages):
        extra = run.attrs(name) if name != "summary" else {}
        if extra:
            body += [heading(3, name), definitions(attr_pairs(extra))]
    return [Section("Dataset", join(body))]


# ---------------------------------------------------------------- continuous evaluation


def model_board_rows(run: RunView) -> list[dict[str, Any]]:
    """The newest value per (model card, evaluation, metric)."""
    latest: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in run.rows("leaderboard"):
        key = (r["card_key"], r["evaluation"], r["metric"])
        if key not in latest or latest[key]["evaluated_at"] < r["evaluated_at"]:
            latest[key] = r
    rows = sorted(latest.values(), key=lambda r: (r["model_name"], r["evaluation"], r["metric"]))
    return [{**r, "shown": fmt(r["value"], PCT if r["evaluation"] == "seval" else ACC)} for r in rows]


MODEL_BOARD_COLUMNS = [
    Column("model_name", "model"),
    Column("kind"),
    Column("evaluation"),
    Column("metric"),
    Column("shown", "value", numeric=True),
    Column("run_id", "run"),
    Column("evaluated_at", "evaluated"),
]


@RUN_SECTIONS.register("continuous_eval")
def continuous_sections(run: RunView) -> list[Section]:
    if not run.has("leaderboard", S.MODEL_LEADERBOARD):
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


@BOARD_SECTIONS.register("continuous_eval")
def continuous_board(runs: list[RunView]) -> list[Section]:
    body: list[Html] = []
    for run in runs:
        if run.has("leaderboard", S.MODEL_LEADERBOARD):
            body.append(table(model_board_rows(run), MODEL_BOARD_COLUMNS))
    if not body:
        return []
    return [
        Section(
            "Continuously evaluated models", join([note("Latest value per model card, evaluation and metric."), *body])
        )
    ]
