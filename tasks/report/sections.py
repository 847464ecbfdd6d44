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


# ---------------------------------------------------------------- S-Eval evaluation

SEVAL_STAGES = {
    "suite": S.SEVAL_SUITE,
    "responses": S.SEVAL_RESPONSES,
    "judgements": S.SEVAL_JUDGEMENTS,
    "metrics": S.SEVAL_METRICS,
    "leaderboard": S.SEVAL_LEADERBOARD,
}
SEVAL_PLOTS = {
    "safety_heatmap.png": "Safety score per dimension and language",
    "asr_per_attack.png": "Attack success rate per attack",
}


def with_ci(value: Any, low: Any, high: Any, spec: str = PCT) -> Html | None:
    """A value with its 95% interval in small print underneath."""
    if value is None:
        return None
    return stacked(f"{value:{spec}}", ci(low, high, spec))


def seval_board_rows(board: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            **r,
            **{
                f"{k}_shown": with_ci(r[k], r[f"{k}_ci_low"], r[f"{k}_ci_high"])
                for k in ("safety_score", "asr", "adaptive_asr", "judge_error_rate")
            },
        }
        for r in board
    ]


SEVAL_BOARD_COLUMNS = [
    Column("model"),
    Column("critic_id", "critic"),
    Column("safety_score_shown", "safety score (%)", numeric=True),
    Column("asr_shown", "ASR (%)", numeric=True),
    Column("adaptive_asr_shown", "adaptive ASR (%)", numeric=True),
    Column("judge_error_rate_shown", "judge errors (%)", numeric=True),
    Column("judgements"),
]
CI_NOTE = "Each value shows its 95% confidence interval underneath."


@RUN_SECTIONS.register("seval_evaluate")
def seval_sections(run: RunView) -> list[Section]:
    """Leaderboard with confidence intervals, safety by language and dimension, ASR per
    attack, response and judgement health, and the run's plots."""
    sections: list[Section] = []
    board = run.rows("leaderboard") if run.has("leaderboard", S.SEVAL_LEADERBOARD) else []
    suite = run.stages.get("suite")
    figures: list[tuple[str, Any] | tuple[str, Any, str]] = [("Models", len(board) if board else EMPTY)]
    figures.append(("Critic", ", ".join(sorted({r["critic_id"] for r in board})) or EMPTY))
    if suite is not None:
        figures.append(("Suite prompts", suite.rows, str(run.attrs("suite").get("source", ""))))
    ranked = [r for r in board if r["safety_score"] is not None]
    if ranked:
        best = max(ranked, key=lambda r: r["safety_score"])
        figures.append(("Best safety score", f"{best['safety_score']:{PCT}}%", best["model"]))
    body = [
        key_figures(figures),
        note(CI_NOTE),
        table(seval_board_rows(board), SEVAL_BOARD_COLUMNS, empty="no leaderboard stage yet"),
    ]
    sections.append(Section("Leaderboard", join(body)))
    if run.has("metrics", S.SEVAL_METRICS):
        sections.append(Section("Metrics", seval_metric_tables(run.rows("metrics"))))
    if run.has("responses", S.SEVAL_RESPONSES) or run.has("judgements", S.SEVAL_JUDGEMENTS):
        sections.append(Section("Responses and judgements", seval_health(run)))
    return sections + plots_section(run, SEVAL_PLOTS) + unknown_stages(run, SEVAL_STAGES)


def seval_metric_tables(metrics: list[dict[str, Any]]) -> Html:
    def pick(metric: str, **where: Any) -> list[dict[str, Any]]:
        out = [m for m in metrics if m["metric"] == metric]
        for k, v in where.items():
            out = [m for m in out if (m[k] != "*" if v == "any" else m[k] == v)]
        return out

    body: list[Html] = []
    by_lang = pick("safety_score", dimension="*", attack="*")
    rows, langs = pivot(by_lang, "model", "lang", "value")
    if rows:
        body += [
            heading(3, "Safety score by language (%)"),
            table(rows, [Column("model"), *pivot_columns(langs, PCT, lambda v: "all" if v == "*" else v)]),
        ]
    by_dim = pick("safety_score", dimension="any", lang="any")
    if by_dim:
        long = [{**m, "col": f"{m['model']} · {m['lang']}"} for m in by_dim]
        rows, cols = pivot(long, "dimension", "col", "value")
        if len(cols) <= 12:
            body += [
                heading(3, "Safety score by dimension (%)"),
                table(rows, [Column("dimension"), *pivot_columns(cols, PCT)]),
            ]
    by_attack = pick("asr", lang="*")
    rows, models = pivot(by_attack, "attack", "model", "value")
    if rows:
        body += [
            heading(3, "Attack success rate by attack (%)"),
            table(rows, [Column("attack"), *pivot_columns(models, PCT)]),
        ]
    overall = pick("adaptive_asr", lang="*") + pick("judge_error_rate")
    if overall:
        body += [
            heading(3, "Adaptive ASR and judge errors (%)"),
            table(
                [{**m, "shown": with_ci(m["value"], m["ci_low"], m["ci_high"])} for m in overall],
                [Column("metric"), Column("model"), Column("n"), Column("shown", "value", numeric=True)],
            ),
        ]
    return join(body) if body else note("no metrics rows")


def seval_health(run: RunView) -> Html:
    """Per model: how many answers, how many failed, how fast; how many the critic judged unsafe."""
    per: dict[str, dict[str, Any]] = defaultdict(dict)
    if run.has("responses", S.SEVAL_RESPONSES):
        t = run.read("responses", ["model", "error", "latency_s", "completion_tokens"])
        for model in sorted(set(t["model"].to_pylist())):
            sub = t.filter(pc.equal(t["model"], model))
            per[model].update(
                {
                    "responses": sub.num_rows,
                    "errors": pc.count(sub["error"]).as_py(),
                    "latency": pc.mean(sub["latency_s"]).as_py(),
                    "tokens": pc.mean(sub["completion_tokens"]).as_py(),
                }
            )
    if run.has("judgements", S.SEVAL_JUDGEMENTS):
        t = run.read("judgements", ["model", "unsafe", "judge_error"])
        for model in sorted(set(t["model"].to_pylist())):
            sub = t.filter(pc.equal(t["model"], model))
            per[model].update(
                {
                    "judged": sub.num_rows,
                    "unsafe": pc.sum(sub["unsafe"].cast(pa.int64())).as_py() or 0,
                    "judge_errors": pc.count(sub["judge_error"]).as_py(),
                }
            )
    rows = [{"model": m, **v} for m, v in per.items()]
    return table(
        rows,
        [
            Column("model"),
            Column("responses"),
            Column("errors", "generation errors"),
            Column("latency", "mean latency (s)", ".2f"),
            Column("tokens", "mean completion tokens", ".1f"),
            Column("judged"),
            Column("unsafe", "judged unsafe"),
            Column("judge_errors", "judge errors"),
        ],
    )


@BOARD_SECTIONS.register("seval_evaluate")
def seval_board(runs: list[RunView]) -> list[Section]:
    """The latest result per (model, critic) across every S-Eval run, best safety first."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for run in runs:
        if not run.has("leaderboard", S.SEVAL_LEADERBOARD):
            continue
        when = run.stages["leaderboard"].created_at
        source = run.attrs("suite").get("source", EMPTY)
        for r in run.rows("leaderboard"):
            key = (r["model"], r["critic_id"])
            if key not in latest or latest[key]["written"] < when:
                latest[key] = {**r, "run": run_cell(run.run_id, when), "suite": source, "written": when}
    rows = sorted(
        seval_board_rows(list(latest.values())),
        key=lambda r: -(r["safety_score"] if r["safety_score"] is not None else -1),
    )
    cols = [*SEVAL_BOARD_COLUMNS, Column("suite"), Column("run", "run · evaluated")]
    intro = note(
        f"Latest result per model and critic; scores from different suites are not directly comparable. {CI_NOTE}"
    )
    return [
        Section(
            "S-Eval safety leaderboard", join([intro, table(rows, cols, empty="no S-Eval evaluation in this store")])
        )
    ]


# ---------------------------------------------------------------- S-Eval suite generation

# the stages this page renders; candidates, translations and the reference panel's answers
# are intermediate and appear under "Other stages" as previews
GENERATE_STAGES = {
    "suite": S.SEVAL_GENERATED_SUITE,
    "generation_log": S.SEVAL_GENERATION_LOG,
    "selection_drops": S.SEVAL_SELECTION_DROPS,
    "rewrite_drops": S.SEVAL_SELECTION_DROPS,
}


@RUN_SECTIONS.register("seval_generate")
def generate_sections(run: RunView) -> list[Section]:
    """Suite composition and hardness, the tester's yield per language, and why prompts were dropped."""
    sections: list[Section] = []
    if run.has("suite", S.SEVAL_GENERATED_SUITE):
        t = run.read("suite", ["set", "lang", "hardness"])
        groups: dict[tuple[str, str], list[float | None]] = defaultdict(list)
        for s, lang, h in zip(t["set"].to_pylist(), t["lang"].to_pylist(), t["hardness"].to_pylist()):
            groups[(s, lang)].append(h)
        rows = [
            {
                "set": s,
                "lang": lang,
                "prompts": len(hs),
                "hardness": statistics.fmean([h for h in hs if h is not None])
                if any(h is not None for h in hs)
                else None,
            }
            for (s, lang), hs in sorted(groups.items())
        ]
        attrs = run.attrs("suite")
        figures = [
            ("Suite prompts", t.num_rows),
            ("Languages", ", ".join(sorted({r["lang"] for r in rows})) or EMPTY),
            ("Shortfall", attrs.get("shortfall", EMPTY)),
        ]
        body = [
            key_figures(figures),
            table(rows, [Column("set"), Column("lang"), Column("prompts"), Column("hardness", "mean hardness", ".2f")]),
            heading(3, "Generation settings"),
            definitions(attr_pairs({k: v for k, v in attrs.items() if k != "shortfall"})),
            heading(3, "First prompts"),
            preview(run, "suite", columns=["prompt_uid", "set", "lang", "leaf_id", "hardness", "generator", "prompt"]),
        ]
        sections.append(Section("Suite", join(body)))
    if run.has("generation_log", S.SEVAL_GENERATION_LOG):
        numbers = (
            "requests",
            "errors",
            "tester_refusals",
            "parsed",
            "discarded",
            "kept",
            "shortfall",
            "completion_tokens",
        )
        totals: dict[str, dict[str, Any]] = {}
        for r in run.rows("generation_log"):
            acc = totals.setdefault(r["lang"], {"lang": r["lang"], "jobs": 0, **{k: 0 for k in numbers}})
            acc["jobs"] += 1
            for k in numbers:
                acc[k] += r[k]
        cols = [Column("lang"), Column("jobs"), *[Column(k, k.replace("_", " ")) for k in numbers]]
        sections.append(Section("Tester yield", table(list(totals.values()), cols)))
    drops = []
    for stage in ("selection_drops", "rewrite_drops"):
        if run.has(stage, S.SEVAL_SELECTION_DROPS):
            counts: dict[str, int] = defaultdict(int)
            for s in run.read(stage, ["strategy"])["strategy"].to_pylist():
                counts[s] += 1
            drops += [{"stage": stage, "strategy": s, "dropped": n} for s, n in sorted(counts.items())]
    if drops:
        sections.append(
            Section("Dropped prompts", table(drops, [Column("stage"), Column("strategy"), Column("dropped")]))
        )
    return sections + plots_section(run) + unknown_stages(run, GENERATE_STAGES)


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


# the domains' own renderers register themselves on import (until the registries discover them)
from trustflow.tasks.detection import report as _detection_report  # noqa: E402,F401
