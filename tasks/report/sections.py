"""What a report shows for each flow: one renderer per flow name, plus a generic fallback.

Two registries, both keyed by the flow name the store uses (``runs/<flow>/…``):

- ``RUN_SECTIONS``: ``RunView → [Section]`` for the page of one run;
- ``BOARD_SECTIONS``: ``[RunView] → [Section]`` for the flow's part of the combined
  leaderboard page (every run of that flow in the store).

A flow's renderers live in its domain's ``tasks/<domain>/report.py``, registered with
``@RUN_SECTIONS.register(names.<FLOW>)`` / ``@BOARD_SECTIONS.register(names.<FLOW>)``; both
registries import every ``trustflow.tasks.*.report`` module on their first lookup, so a new
pipeline's report is that one file. A flow without a renderer still gets a useful page (its
stages and their first rows). This module holds what every renderer shares: ``RunView``,
the table helpers and the generic sections. Renderers check
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


REPORT_PLUGINS = "trustflow.tasks.*.report"
SectionRenderer = Callable[[RunView], list[Section]]
BoardRenderer = Callable[[list[RunView]], list[Section]]

# each domain's renderers live in ``tasks/<domain>/report.py``, found on the first lookup
RUN_SECTIONS: Registry[SectionRenderer] = Registry("run report section", plugins=REPORT_PLUGINS)
BOARD_SECTIONS: Registry[BoardRenderer] = Registry("leaderboard section", plugins=REPORT_PLUGINS)


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
