"""Everything S-Eval shows: metrics, the leaderboard (one formatter for the terminal, the
Prefect artifacts and the HTML report), plots, and the report sections of the evaluation and
suite-generation runs (registered in the report's ``RUN_SECTIONS``/``BOARD_SECTIONS``)."""

from __future__ import annotations

import io
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from trustflow import names
from trustflow.data import schemas as S
from trustflow.data.schemas import SEVAL_LEADERBOARD, SEVAL_METRICS
from trustflow.data.store import ArtifactStore, StageRef
from trustflow.tasks.report.html import (
    EMPTY,
    Column,
    Html,
    Section,
    definitions,
    esc,
    heading,
    join,
    key_figures,
    note,
    stacked,
    table,
)
from trustflow.tasks.report.sections import (
    BOARD_SECTIONS,
    PCT,
    RUN_SECTIONS,
    RunView,
    attr_pairs,
    ci,
    pivot,
    pivot_columns,
    plots_section,
    preview,
    run_cell,
    unknown_stages,
)
from trustflow.tasks.seval import metric_counts as mc
from trustflow.tasks.seval import metrics as m

# ---------------------------------------------------------------- the leaderboard, formatted once

# the leaderboard's rate columns (percent, each with a 95% bootstrap interval) and their labels
BOARD_METRICS: tuple[tuple[str, str], ...] = (
    ("safety_score", "safety score"),
    ("asr", "ASR"),
    ("adaptive_asr", "adaptive ASR"),
    ("judge_error_rate", "judge errors"),
)
BOARD_TITLE = "S-Eval leaderboard (percent, 95% bootstrap interval)"


def board_cell(row: Mapping[str, Any], metric: str) -> str:
    """``value [low–high]`` of one leaderboard rate, or ``–`` when there is none (NaN/None)."""
    v, lo, hi = row[metric], row[f"{metric}_ci_low"], row[f"{metric}_ci_high"]
    return "–" if v is None or v != v else f"{v:.1f} [{lo:.0f}–{hi:.0f}]"


def board_text(rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """The leaderboard as text: (header, one row of cells per model)."""
    header = ["model", *(label for _, label in BOARD_METRICS), "n"]
    body = [[str(r["model"]), *(board_cell(r, k) for k, _ in BOARD_METRICS), str(r["judgements"])] for r in rows]
    return header, body


def board_markdown(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    header, body = board_text(rows)
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    return lines + ["| " + " | ".join(cells) + " |" for cells in body]


# ---------------------------------------------------------------- metrics, leaderboard and plots of a run


# (metric, function of metrics.py / metric_counts.py, grouping, whether adaptive conversations join it)
RATE_METRICS: tuple[tuple[str, str, tuple[str, ...], bool], ...] = (
    ("safety_score", "safety_scores", ("model", "dimension", "lang"), False),
    ("safety_score", "safety_scores", ("model", "lang"), False),
    ("safety_score", "safety_scores", ("model",), False),
    ("asr", "attack_success_rates", ("model", "attack"), True),
    ("asr", "attack_success_rates", ("model", "attack", "lang"), True),
    ("adaptive_asr", "adaptive_asr", ("model",), True),
    ("adaptive_asr", "adaptive_asr", ("model", "lang"), True),
    ("judge_error_rate", "judge_error_rates", ("model",), False),
)


def metric_rows(frame: pd.DataFrame, critic_id: str, turns: pd.DataFrame | None = None) -> pa.Table:
    """Every ``metrics`` row of a run; ``turns``: its adaptive-attack rows (this critic's), whose
    conversations join the per-attack ASR and the adaptive ASR and add ``rounds_to_break``."""
    extra = m.adaptive_as_judgements(turns) if turns is not None and not turns.empty else None
    attacked = frame if extra is None or extra.empty else pd.concat([frame, extra], ignore_index=True)
    parts = [(metric, getattr(m, fn)(attacked if joined else frame, by=by)) for metric, fn, by, joined in RATE_METRICS]
    if extra is not None and turns is not None:
        parts.append(("rounds_to_break", m.rounds_to_break(turns, by=("model", "attack"))))
    return _metric_table(parts, critic_id)


def count_metric_rows(counts: mc.JudgementCounts, critic_id: str) -> pa.Table:
    """:func:`metric_rows` of a run without adaptive attacks, from its judgement counts."""
    return _metric_table([(metric, getattr(mc, fn)(counts, by=by)) for metric, fn, by, _ in RATE_METRICS], critic_id)


def _metric_table(parts: list[tuple[str, pd.DataFrame]], critic_id: str) -> pa.Table:
    rows = []
    for metric, frame_part in parts:
        for rec in frame_part.to_dict("records"):
            rows.append(
                {
                    "metric": metric,
                    "model": rec["model"],
                    "critic_id": critic_id,
                    "dimension": rec.get("dimension", "*"),
                    "lang": rec.get("lang", "*"),
                    "attack": rec.get("attack", "*"),
                    "n": int(rec["n"]),
                    "value": rec["value"],
                    "ci_low": rec["ci_low"],
                    "ci_high": rec["ci_high"],
                }
            )
    return pa.Table.from_pylist(rows, schema=SEVAL_METRICS.schema)


def adaptive_metric_rows(turns: pd.DataFrame, critic_id: str) -> pa.Table:
    """The ``adaptive_metrics`` stage: ASR by round (cumulative) and the share broken at each
    round, per model × attack (all languages and per language)."""
    parts = [
        ("asr_by_round", m.asr_by_round(turns, by=("model", "attack"))),
        ("asr_by_round", m.asr_by_round(turns, by=("model", "attack", "lang"))),
        ("break_round_share", m.break_round_shares(turns, by=("model", "attack"))),
    ]
    rows = [
        {
            "metric": metric,
            "model": rec["model"],
            "critic_id": critic_id,
            "attack": rec["attack"],
            "lang": rec.get("lang", "*"),
            "round": int(rec["round"]),
            "n": int(rec["n"]),
            "value": rec["value"],
            "ci_low": rec["ci_low"],
            "ci_high": rec["ci_high"],
        }
        for metric, part in parts
        for rec in part.to_dict("records")
    ]
    return pa.Table.from_pylist(rows, schema=S.SEVAL_ADAPTIVE_METRICS.schema)


def turns_frame(turns: pa.Table, critic_id: str, models: Sequence[str] | None = None) -> pd.DataFrame:
    """The adaptive turns of one critic (and these models) as the frame tasks/seval/metrics.py reads."""
    from trustflow.tasks.seval.adaptive import get_adaptive

    columns = [
        "model",
        "attack",
        "attack_spec",
        "base_uid",
        "base_id",
        "lang",
        "dimension",
        "round",
        "unsafe",
        "status",
    ]
    out = turns.select([*columns, "critic_id"]).to_pandas()
    out = out[out["critic_id"] == critic_id]
    budgets = {spec: get_adaptive(spec).rounds for spec in set(out["attack_spec"])}  # each attack's round budget
    out = out.assign(budget=out["attack_spec"].map(budgets).astype("int64"))
    return out[out["model"].isin(list(models))] if models is not None else out


JUDGEMENT_FRAME_COLUMNS = (
    "model",
    "set",
    "attack",
    "base_id",
    "lang",
    "dimension",
    "unsafe",
    "judge_error",
    "critic_id",
)


def judgement_frame(judgements: pa.Table) -> pd.DataFrame:
    """The judgements the metrics use, as pandas; string columns become categoricals (one
    small code per row instead of a string: at 4.4M judgements the frame and the copies
    the metrics take of it were the driver's largest allocation)."""
    table = judgements.select(list(JUDGEMENT_FRAME_COLUMNS))
    for i, field in enumerate(table.schema):
        if pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
            table = table.set_column(i, field.name, pc.dictionary_encode(table.column(i)))
    frame = table.to_pandas()
    frame["judge_error"] = frame["judge_error"].notna()
    frame["unsafe"] = frame["unsafe"].fillna(False).astype(bool)
    return frame


USAGE_METRICS = ("prompt_tokens", "completion_tokens", "cost_usd")  # per model, n = responses


def usage_metric_rows(usage: dict[str, Any] | None, critic_id: str) -> list[dict[str, Any]]:
    """The run's tokens and cost per model as metric rows (``value`` None: no prices)."""
    rows = []
    for model, u in ((usage or {}).get("by_model") or {}).items():
        for metric in USAGE_METRICS:
            rows.append(
                {"metric": metric, "model": model, "critic_id": critic_id, "dimension": "*", "lang": "*"}
                | {"attack": "*", "n": int(u["responses"]), "value": u[metric], "ci_low": None, "ci_high": None}
            )
    return rows


def write_metrics(
    store: ArtifactStore,
    run_flow: str,
    run_id: str,
    judgements: pa.Table | mc.JudgementCounts,
    critic_id: str,
    turns: pa.Table | None = None,
    usage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Metrics, leaderboard and plots of a run; ``turns``: its ``adaptive_turns`` stage, if any
    (the adaptive attacks then count in ASR / adaptive ASR, and ``adaptive_metrics`` is written);
    ``usage``: tokens and cost per model, added as metric rows ``prompt_tokens``,
    ``completion_tokens``, ``cost_usd``. ``judgements``: the table, or — for a run without
    adaptive attacks — this critic's judgement counts (tasks/seval/metric_counts.py: the same
    numbers in memory that does not grow with the run)."""
    adaptive = None
    if isinstance(judgements, mc.JudgementCounts):
        if turns is not None:
            raise ValueError("adaptive turns need the judgement table, not counts")
        metrics = count_metric_rows(judgements, critic_id)
        board = mc.leaderboard(judgements)
    else:
        frame = judgement_frame(judgements)
        frame = frame[frame["critic_id"] == critic_id]
        adaptive = turns_frame(turns, critic_id, sorted(set(frame["model"]))) if turns is not None else None
        if adaptive is not None and adaptive.empty:
            adaptive = None
        metrics = metric_rows(frame, critic_id, adaptive)
        board = m.leaderboard(frame, adaptive=m.adaptive_as_judgements(adaptive) if adaptive is not None else None)
    extra = usage_metric_rows(usage, critic_id)
    if extra:
        metrics = pa.concat_tables([metrics, pa.Table.from_pylist(extra, schema=SEVAL_METRICS.schema)])
    if adaptive is not None:
        store.write_stage(
            StageRef(run_flow, run_id, names.ADAPTIVE_METRICS),
            S.SEVAL_ADAPTIVE_METRICS,
            adaptive_metric_rows(adaptive, critic_id),
            ["metric", "model", "critic_id", "attack", "lang", "round"],
        )
    store.write_stage(
        StageRef(run_flow, run_id, names.METRICS),
        SEVAL_METRICS,
        metrics,
        ["metric", "model", "critic_id", "dimension", "lang", "attack"],
    )
    board.insert(1, "critic_id", critic_id)
    board_table = pa.Table.from_pandas(board, schema=SEVAL_LEADERBOARD.schema, preserve_index=False)
    store.write_stage(
        StageRef(run_flow, run_id, names.LEADERBOARD), SEVAL_LEADERBOARD, board_table, ["model", "critic_id"]
    )
    plots = write_plots(store, run_flow, run_id, metrics.to_pandas())
    return {"leaderboard": board.to_dict("records"), "plots": plots}


def write_plots(store: ArtifactStore, run_flow: str, run_id: str, metrics: pd.DataFrame) -> list[str]:
    """Per-dimension safety heatmap and ASR-per-attack bars, as PNGs next to the stages."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    safety = metrics[(metrics["metric"] == "safety_score") & (metrics["dimension"] != "*") & (metrics["lang"] != "*")]
    if not safety.empty:
        pivot = safety.assign(col=safety["dimension"] + "/" + safety["lang"]).pivot_table(
            index="model", columns="col", values="value"
        )
        fig, ax = plt.subplots(figsize=(max(6, 0.6 * pivot.shape[1] + 3), 1.0 + 0.5 * pivot.shape[0]))
        im = ax.imshow(pivot.to_numpy(), vmin=0, vmax=100, cmap="RdYlGn", aspect="auto")
        ax.set_xticks(range(pivot.shape[1]), pivot.columns, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(pivot.shape[0]), pivot.index, fontsize=8)
        for (i, j), v in pd.DataFrame(pivot.to_numpy()).stack().items():
            ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=7)
        fig.colorbar(im, ax=ax, label="safety score (%)")
        ax.set_title("Safety score per dimension / language")
        written.append(_save(store, fig, run_flow, run_id, "safety_heatmap.png"))
        plt.close(fig)
    asr = metrics[(metrics["metric"] == "asr") & (metrics["lang"] == "*")]
    if not asr.empty:
        pivot = asr.pivot_table(index="attack", columns="model", values="value")
        fig, ax = plt.subplots(figsize=(8, 0.4 * pivot.shape[0] + 1.5))
        pivot.plot.barh(ax=ax)
        ax.set_xlabel("attack success rate (%)")
        ax.set_xlim(0, 100)
        ax.set_title("ASR per attack")
        fig.tight_layout()
        written.append(_save(store, fig, run_flow, run_id, "asr_per_attack.png"))
        plt.close(fig)
    return written


def _save(store: ArtifactStore, fig: Any, run_flow: str, run_id: str, name: str) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    path = store.path("runs", run_flow, run_id, "plots", name)
    store.write_bytes_atomic(path, buf.getvalue())
    return f"{store.url}/runs/{run_flow}/{run_id}/plots/{name}"


# ---------------------------------------------------------------- report sections: evaluation runs

SEVAL_STAGES = {
    names.SUITE: S.SEVAL_SUITE,
    names.RESPONSES: S.SEVAL_RESPONSES,
    names.JUDGEMENTS: S.SEVAL_JUDGEMENTS,
    names.METRICS: S.SEVAL_METRICS,
    names.LEADERBOARD: S.SEVAL_LEADERBOARD,
    names.ADAPTIVE_TURNS: S.SEVAL_ADAPTIVE_TURNS,
    names.ADAPTIVE_METRICS: S.SEVAL_ADAPTIVE_METRICS,
}
JUDGEMENT_VERSIONS = (S.SEVAL_JUDGEMENTS, S.SEVAL_JUDGEMENTS_V1)  # v1 stages still render (no tags/rationales)
FLAGGED_SHOWN = 50  # flagged verdicts listed on the page (riskiest first)
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
        {**r, **{f"{k}_shown": with_ci(r[k], r[f"{k}_ci_low"], r[f"{k}_ci_high"]) for k, _ in BOARD_METRICS}}
        for r in board
    ]


SEVAL_BOARD_COLUMNS = [
    Column("model"),
    Column("critic_id", "critic"),
    *[Column(f"{k}_shown", f"{label} (%)", numeric=True) for k, label in BOARD_METRICS],
    Column("judgements"),
]
CI_NOTE = "Each value shows its 95% confidence interval underneath."


@RUN_SECTIONS.register(names.SEVAL_EVALUATE)
def seval_sections(run: RunView) -> list[Section]:
    """Leaderboard with confidence intervals, safety by language and dimension, ASR per
    attack, response and judgement health, and the run's plots."""
    sections: list[Section] = []
    board = run.rows(names.LEADERBOARD) if run.has(names.LEADERBOARD, S.SEVAL_LEADERBOARD) else []
    suite = run.stages.get(names.SUITE)
    figures: list[tuple[str, Any, str]] = [("Models", len(board) if board else EMPTY, "")]
    figures.append(("Critic", ", ".join(sorted({r["critic_id"] for r in board})) or EMPTY, ""))
    if suite is not None:
        figures.append(("Suite prompts", suite.rows, str(run.attrs(names.SUITE).get("source", ""))))
    ranked = [r for r in board if r["safety_score"] is not None]
    if ranked:
        best = max(ranked, key=lambda r: r["safety_score"])
        figures.append(("Best safety score", f"{best['safety_score']:{PCT}}%", str(best["model"])))
    body = [
        key_figures(figures),
        note(CI_NOTE),
        table(seval_board_rows(board), SEVAL_BOARD_COLUMNS, empty="no leaderboard stage yet"),
    ]
    sections.append(Section("Leaderboard", join(body)))
    if run.has(names.METRICS, S.SEVAL_METRICS):
        sections.append(Section("Metrics", seval_metric_tables(run.rows(names.METRICS))))
    if run.has(names.ADAPTIVE_METRICS, S.SEVAL_ADAPTIVE_METRICS):
        metrics = run.rows(names.METRICS) if run.has(names.METRICS, S.SEVAL_METRICS) else []
        sections.append(Section("Adaptive attacks", adaptive_tables(run.rows(names.ADAPTIVE_METRICS), metrics)))
    if _has_responses(run) or _has_judgements(run):
        sections.append(Section("Responses and judgements", seval_health(run)))
    if _has_judgements(run) and _has_responses(run):
        sections.append(Section("Flagged verdicts", flagged_verdicts(run)))
    stages = dict(SEVAL_STAGES)
    if run.has(names.JUDGEMENTS, S.SEVAL_JUDGEMENTS_V1):
        stages[names.JUDGEMENTS] = S.SEVAL_JUDGEMENTS_V1
    if run.has(names.RESPONSES, S.SEVAL_RESPONSES_V1):
        stages[names.RESPONSES] = S.SEVAL_RESPONSES_V1
    return sections + plots_section(run, SEVAL_PLOTS) + unknown_stages(run, stages)


def adaptive_tables(rows: list[dict[str, Any]], metrics: list[dict[str, Any]]) -> Html:
    """ASR by round (cumulative, all languages) per model · attack, and rounds to break."""
    by_round = [
        {**r, "row": f"{r['model']} · {r['attack']}", "col": f"round {r['round']}"}
        for r in rows
        if r["metric"] == "asr_by_round" and r["lang"] == "*"
    ]
    table_rows, cols = pivot(by_round, "row", "col", "value")
    body: list[Html] = []
    if table_rows:
        body += [
            heading(3, "Attack success rate by round, cumulative (%)"),
            table(table_rows, [Column("row", "model · attack"), *pivot_columns(cols, PCT)]),
        ]
    breaks = [r for r in metrics if r["metric"] == "rounds_to_break"]
    if breaks:
        shown = [{**r, "shown": f"{r['value']:.1f} [{r['ci_low']:.1f}–{r['ci_high']:.1f}]"} for r in breaks]
        body += [
            heading(3, "Rounds to break (median over broken conversations, 95% interval)"),
            table(shown, [Column("model"), Column("attack"), Column("n", "broken"), Column("shown", "median")]),
        ]
    return join(body) if body else note("no adaptive-attack metrics")


def _has_responses(run: RunView) -> bool:
    """Responses of any layout (v1 has no ``cost_usd``; the sections read only older columns)."""
    return run.has(names.RESPONSES, S.SEVAL_RESPONSES) or run.has(names.RESPONSES, S.SEVAL_RESPONSES_V1)


def _has_judgements(run: RunView) -> bool:
    return any(run.has(names.JUDGEMENTS, v) for v in JUDGEMENT_VERSIONS)


def flagged_verdicts(run: RunView) -> Html:
    """The triage view: unsafe verdicts, riskiest first, with taxonomy tags and rationale,
    a count per tag, and how to relabel them (the page is static: no script, links are
    anchors only, so the CSV comes from ``trustflow seval verdicts RUN --csv``)."""
    from trustflow.tasks.seval.relabel import run_verdicts

    rows = run_verdicts(run.store, run.run_id)
    if not rows:
        return note("no verdict was judged unsafe")
    counts: dict[str, int] = defaultdict(int)
    for r in rows:
        for tag in filter(None, r["risk_tags"].split(";")):
            counts[tag] += 1
    tagged = sum(1 for r in rows if r["risk_tags"])
    explained = sum(1 for r in rows if r["rationale"])
    figures: list[tuple[str, Any, str]] = [
        ("Unsafe verdicts", len(rows), ""),
        ("Tagged", tagged, "nearest taxonomy leaves"),
        (
            "With a rationale",
            explained,
            str(run.attrs(names.JUDGEMENTS).get("rationale_model") or "no rationale model"),
        ),
    ]
    shown = [{**r, "prompt_response": stacked(r["prompt"][:200], r["response"][:300])} for r in rows[:FLAGGED_SHOWN]]
    for r in shown:
        r["tags"] = Html("<br>".join(esc(t) for t in r["risk_tags"].split(";") if t)) or EMPTY
        r["why"] = r["rationale"] or EMPTY
    body = [
        key_figures(figures),
        table(
            shown,
            [
                Column("judgement_id", "judgement"),
                Column("model"),
                Column("lang"),
                Column("risk_score", "risk", ".2f"),
                Column("tags", "risk tags"),
                Column("why", "rationale"),
                Column("prompt_response", "request / answer"),
            ],
            caption=f"riskiest {len(shown)} of {len(rows)} unsafe verdicts",
        ),
    ]
    if counts:
        tag_rows = [{"tag": t, "verdicts": n} for t, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
        body += [heading(3, "Verdicts per risk tag"), table(tag_rows[:30], [Column("tag"), Column("verdicts")])]
    how = (
        f"To correct verdicts: `trustflow seval verdicts {run.run_id} --csv verdicts.csv`, fill corrected_unsafe "
        f"(unsafe/safe), then `trustflow seval relabel verdicts.csv --annotator NAME`; train or validate a critic "
        f"with --labels relabel:{run.run_id}."
    )
    body.append(note(how))
    return join(body)


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
    if _has_responses(run):
        t = run.read(names.RESPONSES, ["model", "error", "latency_s", "completion_tokens"])
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
    if _has_judgements(run):
        t = run.read(names.JUDGEMENTS, ["model", "unsafe", "judge_error"])
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


@BOARD_SECTIONS.register(names.SEVAL_EVALUATE)
def seval_board(runs: list[RunView]) -> list[Section]:
    """The latest result per (model, critic) across every S-Eval run, best safety first."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for run in runs:
        if not run.has(names.LEADERBOARD, S.SEVAL_LEADERBOARD):
            continue
        when = run.stages[names.LEADERBOARD].created_at
        source = run.attrs(names.SUITE).get("source", EMPTY)
        for r in run.rows(names.LEADERBOARD):
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


# ---------------------------------------------------------------- report sections: suite generation runs

# the stages this page renders; candidates, translations and the reference panel's answers
# are intermediate and appear under "Other stages" as previews
GENERATE_STAGES = {
    names.SUITE: S.SEVAL_GENERATED_SUITE,
    names.GENERATION_LOG: S.SEVAL_GENERATION_LOG,
    names.SELECTION_DROPS: S.SEVAL_SELECTION_DROPS,
    names.REWRITE_DROPS: S.SEVAL_SELECTION_DROPS,
}


@RUN_SECTIONS.register(names.SEVAL_GENERATE)
def generate_sections(run: RunView) -> list[Section]:
    """Suite composition and hardness, the tester's yield per language, and why prompts were dropped."""
    sections: list[Section] = []
    if run.has(names.SUITE, S.SEVAL_GENERATED_SUITE):
        t = run.read(names.SUITE, ["set", "lang", "hardness"])
        groups: dict[tuple[str, str], list[float | None]] = defaultdict(list)
        for s, lang, h in zip(t["set"].to_pylist(), t["lang"].to_pylist(), t["hardness"].to_pylist(), strict=True):
            groups[(s, lang)].append(h)
        rows: list[dict[str, Any]] = [
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
        attrs = run.attrs(names.SUITE)
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
            preview(
                run, names.SUITE, columns=["prompt_uid", "set", "lang", "leaf_id", "hardness", "generator", "prompt"]
            ),
        ]
        sections.append(Section("Suite", join(body)))
    if run.has(names.GENERATION_LOG, S.SEVAL_GENERATION_LOG):
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
        for r in run.rows(names.GENERATION_LOG):
            acc = totals.setdefault(r["lang"], {"lang": r["lang"], "jobs": 0, **{k: 0 for k in numbers}})
            acc["jobs"] += 1
            for k in numbers:
                acc[k] += r[k]
        cols = [Column("lang"), Column("jobs"), *[Column(k, k.replace("_", " ")) for k in numbers]]
        sections.append(Section("Tester yield", table(list(totals.values()), cols)))
    drops = []
    for stage in (names.SELECTION_DROPS, names.REWRITE_DROPS):
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


# ---------------------------------------------------------------- Prefect artifacts


def cache_summary(enabled: bool, stats_by_user: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The run's LLM cache block: hits / lookups over every target and the critic, and per user.

    ``stats_by_user``: each LLM user's stage counts (target spec or ``critic SPEC`` → the
    ``cache_*`` counters its stage returned; a stage that made no calls has none)."""
    from trustflow.models.llm.cache import hit_rate, sum_counters

    by = {
        name: {"lookups": c.get("cache_lookups", 0), "hits": c.get("cache_hits", 0), "hit_rate": hit_rate(c)}
        for name, stats in stats_by_user.items()
        for c in [sum_counters([stats])]
    }
    total = sum_counters(list(stats_by_user.values()))
    return {
        "enabled": enabled,
        "lookups": total.get("cache_lookups", 0),
        "hits": total.get("cache_hits", 0),
        "writes": total.get("cache_writes", 0),
        "corrupt": total.get("cache_corrupt", 0),
        "hit_rate": hit_rate(total),
        "by": by,
    }


def cache_line(info: dict[str, Any] | None) -> str | None:
    """One line for the CLI and the run summary: ``llm cache: 64/64 hits (100.0 %)``."""
    if not info:
        return None
    if not info.get("enabled"):
        return "llm cache: off (--no-cache)"
    rate = info.get("hit_rate")
    shown = "no cacheable calls" if rate is None else f"{info['hits']}/{info['lookups']} hits ({100 * rate:.1f} %)"
    extra = f", {info['corrupt']} corrupt entries replaced" if info.get("corrupt") else ""
    return f"llm cache: {shown}, {info.get('writes', 0)} new entries{extra}"


def usage_lines(usage: dict[str, Any] | None) -> list[str]:
    """Tokens and cost per model and for the run, one line each (cache hits cost 0)."""
    if not usage or not usage.get("by_model"):
        return []

    def one(name: str, u: dict[str, Any]) -> str:
        cost = "no prices set" if u.get("cost_usd") is None else f"${u['cost_usd']:.4f}"
        return f"{name}: {u['prompt_tokens']:,} prompt + {u['completion_tokens']:,} completion tokens, {cost}"

    lines = [f"usage {one(model, u)}" for model, u in usage["by_model"].items()]
    if len(lines) > 1:
        lines.append(f"usage {one('run total', usage['total'])}")
    return lines


def publish_evaluation(
    run_id: str,
    store_url: str,
    suite_info: dict[str, Any],
    report: dict[str, Any],
    cache_info: dict[str, Any] | None = None,
    usage: dict[str, Any] | None = None,
) -> None:
    """The evaluation run's Prefect artifacts: the leaderboard table and a markdown summary
    (with the LLM cache hit rate when given)."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    rows = [
        {k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items() if not k.endswith(("_low", "_high"))}
        for r in report["leaderboard"]
    ]
    create_table_artifact(key="seval-leaderboard", table=rows, description=f"S-Eval leaderboard of run {run_id}")
    lines = [
        f"# S-Eval run `{run_id}`",
        f"suite: {suite_info['rows']} prompts from `{suite_info['source']}`",
        "",
        *board_markdown(report["leaderboard"]),
        "",
        *([line, ""] if (line := cache_line(cache_info)) else []),
        *[f"- {u}" for u in usage_lines(usage)],
        f"Stages: `{store_url}/runs/{names.SEVAL_EVALUATE}/{run_id}/`",
        *[f"- plot: `{p}`" for p in report["plots"]],
    ]
    create_markdown_artifact(key="seval-summary", markdown="\n".join(lines))


def publish_suite(suite_id: str, store_url: str, result: dict[str, Any]) -> None:
    """The suite run's Prefect artifacts: stage counts and drops per strategy."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    g, s, f = result["generated"], result["selected"], result["suite"]
    lines = [
        f"# Test suite `{suite_id}`",
        "",
        "| stage | count |",
        "|---|---:|",
        f"| tester calls | {g.get('tester_calls', 0)} |",
        f"| tester refusals | {g.get('tester_refusals', 0)} |",
        f"| candidates parsed | {g.get('items_parsed', 0)} |",
        f"| items discarded by the parser | {g.get('items_discarded', 0)} |",
        f"| dropped by selection | {s['dropped']} |",
        f"| base prompts kept | {f.get('base', 0)} (translated: {f.get('translated', 0)}) |",
        f"| attack prompts | {f.get('attack', 0)} |",
        "",
        "Dropped by strategy: " + (", ".join(f"{k} {v}" for k, v in sorted(s["dropped_by"].items())) or "none"),
        "",
        f"Short of quota: {', '.join(f'{k} ({v})' for k, v in s['shortfall'].items()) or 'none'}",
        f"Stages: `{store_url}/runs/{names.SEVAL_GENERATE}/{suite_id}/`",
    ]
    create_markdown_artifact(key="seval-suite", markdown="\n".join(lines))
    create_table_artifact(
        key="seval-suite-drops",
        table=[{"strategy": k, "dropped": v} for k, v in sorted(s["dropped_by"].items())]
        or [{"strategy": "none", "dropped": 0}],
    )
