"""Critic judgements of target responses, on Ray (one actor per critic replica).

Critics are cheap to construct (identity only) and load their model on first use, so the
driver can compute keys — (response_id, critic_id, critic_prompt_hash) — without loading
anything. A response whose generation failed gets a judgement row with ``judge_error``
``generation_error: ...``: excluded from every rate, visible in the report.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa

from trustflow.data.schemas import SEVAL_JUDGEMENTS
from trustflow.data.store import ArtifactStore, Manifest, StageRef
from trustflow.models.critics import JudgeItem, Judgement, make_critic
from trustflow.tasks.ray_actors import write_parts_with_actors
from trustflow.tasks.ray_parts import missing_chunks

JUDGEMENT_KEYS = ["response_id", "critic_id", "critic_prompt_hash"]
CARRIED = ["response_id", "model", "prompt_uid", "set", "attack", "base_id", "lang", "dimension"]
RESPONSE_COLUMNS = [*CARRIED, "prompt", "response", "error"]


def judgement_rows(rows: list[dict[str, Any]], judgements: list[Judgement]) -> pa.Table:
    out: dict[str, list] = {name: [] for name in SEVAL_JUDGEMENTS.names}
    for row, j in zip(rows, judgements, strict=True):
        for col in CARRIED:
            out[col].append(row[col])
        out["critic_id"].append(j.critic_id)
        out["critic_prompt_hash"].append(j.critic_prompt_hash)
        out["risk_score"].append(j.risk_score)
        out["unsafe"].append(j.unsafe)
        out["risk_tags"].append(list(j.risk_tags))
        out["explanation"].append(j.explanation)
        out["raw_output"].append(j.raw_output)
        out["judge_error"].append(j.judge_error)
    return pa.table(out, schema=SEVAL_JUDGEMENTS.schema)


class JudgeFactory:
    """Picklable recipe: each actor builds the critic once and judges batches."""

    def __init__(self, critic_spec: str) -> None:
        self.critic_spec = critic_spec

    def __call__(self) -> Callable[[list[dict[str, Any]]], pa.Table]:
        critic = make_critic(self.critic_spec)

        def judge(rows: list[dict[str, Any]]) -> pa.Table:
            answerable = [r for r in rows if not r["error"]]
            verdicts = iter(
                critic.judge(
                    [
                        JudgeItem(prompt=r["prompt"], response=r["response"], lang=r["lang"], dimension=r["dimension"])
                        for r in answerable
                    ]
                )
            )
            judgements = [
                next(verdicts)
                if not r["error"]
                else Judgement.error(critic.critic_id, critic.prompt_hash, "", f"generation_error: {r['error']}")
                for r in rows
            ]
            return judgement_rows(rows, judgements)

        return judge


def judge_responses(
    store: ArtifactStore,
    ref: StageRef,
    responses: pa.Table,
    critic_spec: str,
    batch_size: int = 8,
    num_actors: int = 1,
    num_cpus_per_actor: float = 1.0,
) -> dict[str, int]:
    """Judge every response not yet judged by this critic (no commit)."""
    critic = make_critic(critic_spec)
    writer = store.writer(ref, SEVAL_JUDGEMENTS, JUDGEMENT_KEYS)
    keyed = responses.select(RESPONSE_COLUMNS)
    keyed = keyed.append_column("critic_id", pa.array([critic.critic_id] * keyed.num_rows, pa.string()))
    keyed = keyed.append_column("critic_prompt_hash", pa.array([critic.prompt_hash] * keyed.num_rows, pa.string()))
    tag = f"{critic.critic_id}-{critic.prompt_hash}"[:40]
    chunks = missing_chunks(writer, keyed, RESPONSE_COLUMNS, batch_size, tag, "response_id")
    stats = write_parts_with_actors(
        store,
        ref,
        SEVAL_JUDGEMENTS,
        JUDGEMENT_KEYS,
        chunks,
        JudgeFactory(critic_spec),
        num_actors=num_actors,
        num_cpus_per_actor=num_cpus_per_actor,
        label=f"judging ({critic.critic_id})",
    )
    stats["responses"] = responses.num_rows
    return stats


def commit_judgements(store: ArtifactStore, ref: StageRef, attrs: dict[str, Any]) -> Manifest:
    return store.writer(ref, SEVAL_JUDGEMENTS, JUDGEMENT_KEYS).commit(attrs)
