"""Target responses: every (prompt, target model, generation config) answered on Ray.

One actor per model replica holds the loaded backend; prompts go in batches (one Parquet
part each, streamed to the store as they finish). A re-run skips keys already answered.
Failures are rows with ``error`` set, never dropped, so a flaky endpoint shows up in the
report instead of silently shrinking the denominator.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from trustflow.data.schemas import SEVAL_RESPONSES
from trustflow.data.store import ArtifactStore, Manifest, StageRef
from trustflow.models.llm.base import ChatRequest, GenParams
from trustflow.tasks.ray_actors import write_parts_with_actors
from trustflow.tasks.ray_parts import missing_chunks

RESPONSE_KEYS = ["model", "gen_config_hash", "prompt_uid"]
SUITE_COLUMNS = ["prompt_uid", "set", "attack", "base_id", "lang", "dimension", "prompt"]


def gen_config_hash(params: GenParams, system_prompt: str | None) -> str:
    payload = json.dumps({"params": params.model_dump(mode="json"), "system": system_prompt}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def response_id(model: str, config_hash: str, prompt_uid: str) -> str:
    return hashlib.sha256(f"{model}\x00{config_hash}\x00{prompt_uid}".encode()).hexdigest()[:24]


class ResponderFactory:
    """Picklable recipe an actor uses to load the backend once and answer batches."""

    def __init__(self, model_spec: str, params: GenParams, system_prompt: str | None) -> None:
        self.model_spec = model_spec
        self.params = params
        self.system_prompt = system_prompt

    def __call__(self) -> Callable[[list[dict[str, Any]]], pa.Table]:
        from trustflow.models.llm.spec import load_backend

        backend = load_backend(self.model_spec)
        config = gen_config_hash(self.params, self.system_prompt)

        def answer(rows: list[dict[str, Any]]) -> pa.Table:
            requests = []
            for row in rows:
                messages = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
                messages.append({"role": "user", "content": row["prompt"]})
                requests.append(ChatRequest.of(messages, id=row["prompt_uid"], **self.params.model_dump()))
            results = backend.generate(requests)
            out: dict[str, list] = {name: [] for name in SEVAL_RESPONSES.names}
            for row, res in zip(rows, results, strict=True):
                out["response_id"].append(response_id(self.model_spec, config, row["prompt_uid"]))
                out["model"].append(self.model_spec)
                out["gen_config_hash"].append(config)
                for col in SUITE_COLUMNS:
                    out[col].append(row[col])
                out["response"].append(res.text or "")
                out["finish_reason"].append(res.finish_reason)
                out["prompt_tokens"].append(res.prompt_tokens)
                out["completion_tokens"].append(res.completion_tokens)
                out["latency_s"].append(res.latency_s)
                out["error"].append(res.error)
            return pa.table(out, schema=SEVAL_RESPONSES.schema)

        return answer


def generate_responses(
    store: ArtifactStore,
    ref: StageRef,
    suite: pa.Table,
    model_spec: str,
    params: GenParams,
    system_prompt: str | None = None,
    batch_size: int = 8,
    num_actors: int = 1,
    num_cpus_per_actor: float = 1.0,
    num_gpus_per_actor: float = 0.0,
) -> dict[str, int]:
    """Answer every suite prompt not yet answered by ``model_spec`` under this config (no commit)."""
    config = gen_config_hash(params, system_prompt)
    writer = store.writer(ref, SEVAL_RESPONSES, RESPONSE_KEYS)
    keyed = suite.select(SUITE_COLUMNS)
    keyed = keyed.append_column("model", pa.array([model_spec] * keyed.num_rows, pa.string()))
    keyed = keyed.append_column("gen_config_hash", pa.array([config] * keyed.num_rows, pa.string()))
    model_tag = hashlib.sha256(f"{model_spec}\x00{config}".encode()).hexdigest()[:10]
    chunks = missing_chunks(writer, keyed, SUITE_COLUMNS, batch_size, model_tag, "prompt_uid")
    stats = write_parts_with_actors(
        store,
        ref,
        SEVAL_RESPONSES,
        RESPONSE_KEYS,
        chunks,
        ResponderFactory(model_spec, params, system_prompt),
        num_actors=num_actors,
        num_cpus_per_actor=num_cpus_per_actor,
        num_gpus_per_actor=num_gpus_per_actor,
        label=f"responses {model_spec}",
    )
    stats["prompts"] = suite.num_rows
    return stats


def commit_responses(store: ArtifactStore, ref: StageRef, attrs: dict[str, Any]) -> Manifest:
    return store.writer(ref, SEVAL_RESPONSES, RESPONSE_KEYS).commit(attrs)
