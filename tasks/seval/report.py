"""Metrics, leaderboard, plots and Prefect artifacts of an S-Eval evaluation run."""

from __future__ import annotations

import io
from typing import Any

import pandas as pd
import pyarrow as pa

from trustflow.data.schemas import SEVAL_LEADERBOARD, SEVAL_METRICS
from trustflow.data.store import ArtifactStore, StageRef
from trustflow.tasks.seval import metrics as m


def metric_rows(frame: pd.DataFrame, critic_id: str) -> pa.Table:
    parts = [
        ("safety_score", m.safety_scores(frame, by=("model", "dimension", "lang"))),
        ("safety_score", m.safety_scores(frame, by=("model", "lang"))),
        ("safety_score", m.safety_scores(frame, by=("model",))),
        ("asr", m.attack_success_rates(frame, by=("model", "attack"))),
        ("asr", m.attack_success_rates(frame, by=("model", "attack", "lang"))),
        ("adaptive_asr", m.adaptive_asr(frame, by=("model",))),
        ("adaptive_asr", m.adaptive_asr(frame, by=("model", "lang"))),
        ("judge_error_rate", m.judge_error_rates(frame, by=("model",))),
    ]
    rows = []
    for metric, table in parts:
        for rec in table.to_dict("records"):
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


def judgement_frame(judgements: pa.Table) -> pd.DataFrame:
    frame = judgements.select(
        ["model", "set", "attack", "base_id", "lang", "dimension", "unsafe", "judge_error", "critic_id"]
    ).to_pandas()
    frame["judge_error"] = frame["judge_error"].notna()
    frame["unsafe"] = frame["unsafe"].fillna(False).astype(bool)
    return frame


def write_metrics(
    store: ArtifactStore, run_flow: str, run_id: str, judgements: pa.Table, critic_id: str
) -> dict[str, Any]:
    frame = judgement_frame(judgements)
    frame = frame[frame["critic_id"] == critic_id]
    metrics = metric_rows(frame, critic_id)
    store.write_stage(
        StageRef(run_flow, run_id, "metrics"),
        SEVAL_METRICS,
        metrics,
        ["metric", "model", "critic_id", "dimension", "lang", "attack"],
    )
    board = m.leaderboard(frame)
    board.insert(1, "critic_id", critic_id)
    board_table = pa.Table.from_pandas(board, schema=SEVAL_LEADERBOARD.schema, preserve_index=False)
    store.write_stage(StageRef(run_flow, run_id, "leaderboard"), SEVAL_LEADERBOARD, board_table, ["model", "critic_id"])
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
