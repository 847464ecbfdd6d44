"""Target responses: every (prompt, target model, generation config) answered on Ray.

In-process models: one Ray actor per model replica holds the loaded backend; prompts go in
batches (one Parquet part each, streamed to the store as they finish). HTTP targets
(``openai:``, ``endpoint:``): no Ray at all; one backend in this process keeps
``concurrency`` requests in flight the whole time (threads feed it batches ahead of time),
and each batch's part is written as soon as its last answer arrives. The payload carries
no extras (no logprobs): exactly the generation parameters of the run. A re-run skips keys
already answered.
Failures are rows with ``error`` set, never dropped, so a flaky endpoint shows up in the
report instead of silently shrinking the denominator.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pyarrow as pa

from trustflow.data.schemas import SEVAL_RESPONSES
from trustflow.data.store import ArtifactStore, Manifest, StageRef
from trustflow.models.llm.base import ChatBackend, ChatRequest, GenParams
from trustflow.tasks.ray_actors import write_parts_in_threads, write_parts_with_actors
from trustflow.tasks.ray_parts import StoreSpec, missing_chunks

RESPONSE_KEYS = ["model", "gen_config_hash", "prompt_uid"]
SUITE_COLUMNS = ["prompt_uid", "set", "attack", "base_id", "lang", "dimension", "prompt"]
HTTP_SCHEMES = ("openai", "endpoint")  # answered by a server: threads, not Ray actors


def is_http_spec(model_spec: str) -> bool:
    return model_spec.strip().partition(":")[0] in HTTP_SCHEMES


def gen_config_hash(params: GenParams, system_prompt: str | None) -> str:
    payload = json.dumps({"params": params.model_dump(mode="json"), "system": system_prompt}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def response_id(model: str, config_hash: str, prompt_uid: str) -> str:
    return hashlib.sha256(f"{model}\x00{config_hash}\x00{prompt_uid}".encode()).hexdigest()[:24]


class ResponderFactory:
    """Picklable recipe an actor (or the driver, for HTTP targets) uses to load the backend
    once and answer batches; ``options`` go to the backend (e.g. ``max_concurrency``).
    ``cache``: the store holding the cross-run LLM response cache (None: ``--no-cache``)."""

    def __init__(
        self,
        model_spec: str,
        params: GenParams,
        system_prompt: str | None,
        cache: StoreSpec | None = None,
        **options: Any,
    ) -> None:
        self.model_spec = model_spec
        self.params = params
        self.system_prompt = system_prompt
        self.cache = cache
        self.options = options

    def __call__(self) -> Responder:
        from trustflow.models.llm.cache import LLMCache, with_cache
        from trustflow.models.llm.spec import load_backend

        cache = LLMCache(self.cache.open()) if self.cache is not None else None
        # behind the cache the model loads on the first miss: a fully cached rerun never loads it
        backend = with_cache(
            lambda: load_backend(self.model_spec, **self.options), self.model_spec, cache, **self.options
        )
        return Responder(self, backend)


class Responder:
    """Answers one batch of suite rows → SEVAL_RESPONSES rows; thread-safe when the backend is."""

    def __init__(self, recipe: ResponderFactory, backend: ChatBackend) -> None:
        self.recipe = recipe
        self.backend = backend
        self.config = gen_config_hash(recipe.params, recipe.system_prompt)

    def __call__(self, rows: list[dict[str, Any]]) -> pa.Table:
        spec, system = self.recipe.model_spec, self.recipe.system_prompt
        params = self.recipe.params.model_dump()
        requests = []
        for row in rows:
            messages = [{"role": "system", "content": system}] if system else []
            messages.append({"role": "user", "content": row["prompt"]})
            requests.append(ChatRequest.of(messages, id=row["prompt_uid"], **params))
        results = self.backend.generate(requests)
        out: dict[str, list] = {name: [] for name in SEVAL_RESPONSES.names}
        for row, res in zip(rows, results, strict=True):
            out["response_id"].append(response_id(spec, self.config, row["prompt_uid"]))
            out["model"].append(spec)
            out["gen_config_hash"].append(self.config)
            for col in SUITE_COLUMNS:
                out[col].append(row[col])
            out["response"].append(res.text or "")
            out["finish_reason"].append(res.finish_reason)
            out["prompt_tokens"].append(res.prompt_tokens)
            out["completion_tokens"].append(res.completion_tokens)
            out["latency_s"].append(res.latency_s)
            out["error"].append(res.error)
        return pa.table(out, schema=SEVAL_RESPONSES.schema)

    def counters(self) -> dict[str, int]:
        """The LLM cache's counters (empty when the run is uncached)."""
        counters = getattr(self.backend, "counters", None)
        return dict(counters()) if callable(counters) else {}

    def close(self) -> None:
        self.backend.close()


# parts per (model, config) a large run is cut into (tasks/ray_parts.missing_chunks): a
# 220,000-prompt suite makes ~64 parts of ≤ 2,048 rows instead of 27,500 parts of 8
PARTS_PER_MODEL = 64


def generate_responses(
    store: ArtifactStore,
    ref: StageRef,
    suite: pa.Table,
    model_spec: str,
    params: GenParams,
    system_prompt: str | None = None,
    batch_size: int = 8,
    num_actors: int = 1,
    num_cpus_per_actor: float | None = None,
    num_gpus_per_actor: float = 0.0,
    concurrency: int = 8,
    cache: bool = True,
) -> dict[str, int]:
    """Answer every suite prompt not yet answered by ``model_spec`` under this config (no commit).

    HTTP targets run in this process with ``concurrency`` requests in flight (``num_actors``
    and the per-actor resources do not apply); other specs run on ``num_actors`` Ray actors
    (``num_cpus_per_actor`` None: the cluster's CPUs split over the actors). ``cache``: look
    every call up in the cross-run LLM response cache in ``store`` first (models/llm/cache.py);
    the returned counts then include ``cache_lookups`` / ``cache_hits``."""
    config = gen_config_hash(params, system_prompt)
    writer = store.writer(ref, SEVAL_RESPONSES, RESPONSE_KEYS)
    keyed = suite.select(SUITE_COLUMNS)
    keyed = keyed.append_column("model", pa.array([model_spec] * keyed.num_rows, pa.string()))
    keyed = keyed.append_column("gen_config_hash", pa.array([config] * keyed.num_rows, pa.string()))
    model_tag = hashlib.sha256(f"{model_spec}\x00{config}".encode()).hexdigest()[:10]
    chunks = missing_chunks(
        writer, keyed, SUITE_COLUMNS, batch_size, model_tag, "prompt_uid", max_parts=PARTS_PER_MODEL
    )
    label = f"responses {model_spec}"
    cache_spec = StoreSpec.of(store) if cache else None
    if is_http_spec(model_spec):
        stats = write_parts_in_threads(
            store,
            ref,
            SEVAL_RESPONSES,
            RESPONSE_KEYS,
            chunks,
            ResponderFactory(model_spec, params, system_prompt, cache_spec, max_concurrency=concurrency),
            # enough batches queued that the endpoint never waits for a batch to be handed out
            workers=2 * -(-concurrency // batch_size) + 1,
            label=label,
        )
    else:
        from trustflow.infra.ray_runtime import ensure_ray
        from trustflow.tasks.ray_actors import cpus_per_actor

        if chunks:
            ensure_ray(store.settings)
            if num_cpus_per_actor is None:
                num_cpus_per_actor = cpus_per_actor(num_actors)
        stats = write_parts_with_actors(
            store,
            ref,
            SEVAL_RESPONSES,
            RESPONSE_KEYS,
            chunks,
            ResponderFactory(model_spec, params, system_prompt, cache_spec),
            num_actors=num_actors,
            num_cpus_per_actor=num_cpus_per_actor or 1.0,
            num_gpus_per_actor=num_gpus_per_actor,
            label=label,
        )
    stats["prompts"] = suite.num_rows
    return stats


def commit_responses(store: ArtifactStore, ref: StageRef, attrs: dict[str, Any]) -> Manifest:
    return store.writer(ref, SEVAL_RESPONSES, RESPONSE_KEYS).commit(attrs)
