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

Cost: every row carries its tokens and ``cost_usd`` (the endpoint's prices, 0 for a cache
hit, null without prices). A :class:`Budget` (``--cost-limit`` / ``--token-limit``) is
checked before each batch: once this invocation has spent it, no new batch starts, the
batches in flight finish and are written, and :class:`BudgetReached` stops the run without
a commit; running the same command again resumes from the parts on storage.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from trustflow.data.schemas import SCHEMA_VERSION_KEY, SEVAL_RESPONSES, upgrade_responses
from trustflow.data.store import ArtifactStore, Manifest, StageRef, StageWriter
from trustflow.errors import TrustflowError
from trustflow.models.llm.base import ChatBackend, ChatRequest, GenParams
from trustflow.models.llm.limits import cost_usd
from trustflow.tasks.ray_actors import write_parts_in_threads, write_parts_with_actors
from trustflow.tasks.ray_parts import StoreSpec, missing_chunks, source_chunks

log = logging.getLogger(__name__)

RESPONSE_KEYS = ["model", "gen_config_hash", "prompt_uid"]
NANO = 1_000_000_000  # cost counters travel as integer nano-dollars (stage counters are ints)


class BudgetReached(TrustflowError):
    """A run's ``--cost-limit`` / ``--token-limit`` was spent: stopped cleanly, resumable."""

    exit_code = 3


@dataclass(frozen=True)
class Budget:
    """Limits on what this invocation may spend on target calls (cache hits are free);
    ``spent_*``: what earlier targets of the same invocation already spent."""

    cost_limit: float | None = None
    token_limit: int | None = None
    spent_cost: float = 0.0
    spent_tokens: int = 0

    @property
    def active(self) -> bool:
        return self.cost_limit is not None or self.token_limit is not None

    def reached(self, cost: float, tokens: int) -> str | None:
        """Why no new call may start after spending ``cost`` / ``tokens`` (None: go on)."""
        if self.cost_limit is not None and cost >= self.cost_limit:
            return f"cost limit ${self.cost_limit:g} reached (spent ${cost:.6f}, {tokens} tokens)"
        if self.token_limit is not None and tokens >= self.token_limit:
            return f"token limit {self.token_limit} reached (spent {tokens} tokens, ${cost:.6f})"
        return None


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
        budget: Budget | None = None,
        **options: Any,
    ) -> None:
        self.model_spec = model_spec
        self.params = params
        self.system_prompt = system_prompt
        self.cache = cache
        self.budget = budget or Budget()
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
        from trustflow.models.llm.spec import endpoint_prices

        self.recipe = recipe
        self.backend = backend
        self.config = gen_config_hash(recipe.params, recipe.system_prompt)
        self.prices = endpoint_prices(recipe.model_spec)
        self.budget = recipe.budget
        self.spent_cost = 0.0  # this responder's paid calls (cache hits excluded)
        self.spent_tokens = 0
        self._lock = threading.Lock()

    def check_budget(self) -> None:
        with self._lock:
            why = self.budget.reached(
                self.budget.spent_cost + self.spent_cost, self.budget.spent_tokens + self.spent_tokens
            )
        if why:
            raise BudgetReached(why)

    def __call__(self, rows: list[dict[str, Any]]) -> pa.Table:
        if self.budget.active:
            self.check_budget()
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
            cost = 0.0 if res.cached else cost_usd(res.prompt_tokens, res.completion_tokens, *self.prices)
            out["cost_usd"].append(cost)
            if not res.cached:
                with self._lock:
                    self.spent_cost += cost or 0.0
                    self.spent_tokens += res.prompt_tokens + res.completion_tokens
        return pa.table(out, schema=SEVAL_RESPONSES.schema)

    def counters(self) -> dict[str, int]:
        """The LLM cache's counters (empty when the run is uncached) and what was spent."""
        counters = getattr(self.backend, "counters", None)
        out = dict(counters()) if callable(counters) else {}
        with self._lock:
            out["spent_tokens"] = self.spent_tokens
            out["spent_cost_nusd"] = round(self.spent_cost * NANO)
        return out

    def close(self) -> None:
        self.backend.close()


# parts per (model, config) a large run is cut into (tasks/ray_parts.missing_chunks): a
# 220,000-prompt suite makes ~64 parts of ≤ 2,048 rows instead of 27,500 parts of 8
PARTS_PER_MODEL = 64


def generate_responses(
    store: ArtifactStore,
    ref: StageRef,
    suite: pa.Table | StageRef,
    model_spec: str,
    params: GenParams,
    system_prompt: str | None = None,
    batch_size: int = 8,
    num_actors: int = 1,
    num_cpus_per_actor: float | None = None,
    num_gpus_per_actor: float = 0.0,
    concurrency: int = 8,
    cache: bool = True,
    budget: Budget | None = None,
) -> dict[str, int]:
    """Answer every suite prompt not yet answered by ``model_spec`` under this config (no commit).

    ``suite``: a table, or the ref of a committed suite stage — then the workers read their
    prompts from its parts themselves (tasks/ray_parts.source_chunks) and this process holds
    only keys, one part at a time: what keeps the driver flat at millions of prompts.

    HTTP targets run in this process with ``concurrency`` requests in flight (``num_actors``
    and the per-actor resources do not apply); other specs run on ``num_actors`` Ray actors
    (``num_cpus_per_actor`` None: the cluster's CPUs split over the actors). ``cache``: look
    every call up in the cross-run LLM response cache in ``store`` first (models/llm/cache.py);
    the returned counts then include ``cache_lookups`` / ``cache_hits``. ``budget``: stop with
    :class:`BudgetReached` (parts kept, no commit) once it is spent; the counts include
    ``spent_tokens`` and ``spent_cost_nusd`` (nano-dollars)."""
    config = gen_config_hash(params, system_prompt)
    writer = store.writer(ref, SEVAL_RESPONSES, RESPONSE_KEYS)
    upgrade_parts(writer)
    model_tag = hashlib.sha256(f"{model_spec}\x00{config}".encode()).hexdigest()[:10]
    if isinstance(suite, StageRef):
        chunks, prompts = source_chunks(
            store,
            suite,
            writer,
            SUITE_COLUMNS,
            batch_size,
            model_tag,
            "prompt_uid",
            constants={"model": model_spec, "gen_config_hash": config},
            max_parts=PARTS_PER_MODEL,
        )
    else:
        keyed = suite.select(SUITE_COLUMNS)
        keyed = keyed.append_column("model", pa.array([model_spec] * keyed.num_rows, pa.string()))
        keyed = keyed.append_column("gen_config_hash", pa.array([config] * keyed.num_rows, pa.string()))
        chunks = missing_chunks(
            writer, keyed, SUITE_COLUMNS, batch_size, model_tag, "prompt_uid", max_parts=PARTS_PER_MODEL
        )
        prompts = suite.num_rows
    label = f"responses {model_spec}"
    cache_spec = StoreSpec.of(store) if cache else None
    try:
        if is_http_spec(model_spec):
            stats = write_parts_in_threads(
                store,
                ref,
                SEVAL_RESPONSES,
                RESPONSE_KEYS,
                chunks,
                ResponderFactory(model_spec, params, system_prompt, cache_spec, budget, max_concurrency=concurrency),
                # enough batches queued that the endpoint never waits for a batch to be handed out
                workers=2 * -(-concurrency // batch_size) + 1,
                label=label,
                planned=True,  # chunks hold only rows the stage lacks
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
                ResponderFactory(model_spec, params, system_prompt, cache_spec, budget),
                num_actors=num_actors,
                num_cpus_per_actor=num_cpus_per_actor or 1.0,
                num_gpus_per_actor=num_gpus_per_actor,
                label=label,
                planned=True,  # chunks hold only rows the stage lacks
            )
    except BudgetReached as exc:
        raise BudgetReached(
            f"{exc}; stopped {model_spec} cleanly in run {ref.run_id} (answers so far are kept, nothing "
            "committed): run the same command again to resume, with a higher limit or none"
        ) from None
    stats["prompts"] = prompts
    return stats


def upgrade_parts(writer: StageWriter) -> int:
    """Rewrite parts of an older responses layout (v1: no ``cost_usd``) as the current one,
    each atomically under its own name, so a resumed old run commits one schema; returns
    how many were rewritten (footers only are read when the stage is current)."""
    current = str(SEVAL_RESPONSES.version).encode()
    rewritten = 0
    for info in writer.part_files():
        schema = pq.read_schema(info.path, filesystem=writer.store.fs)
        if (schema.metadata or {}).get(SCHEMA_VERSION_KEY, b"") != current:
            table = pq.read_table(info.path, filesystem=writer.store.fs)
            part_id = info.base_name.removeprefix("part-").removesuffix(".parquet")
            writer.write_part(upgrade_responses(table.replace_schema_metadata(None)), part_id)
            rewritten += 1
    if rewritten:
        log.info("stage %s: %d response part(s) upgraded to schema v%d", writer.ref, rewritten, SEVAL_RESPONSES.version)
    return rewritten


def usage_by_model(responses: pa.Table) -> dict[str, dict[str, Any]]:
    """Per model: rows, errors, tokens and cost (USD; None when no row has a price) of a
    responses table of any layout; cache hits count their tokens but cost 0. Aggregated in
    Arrow (no Python row per response), so a stage can be summed part by part."""
    costs = (
        responses["cost_usd"] if "cost_usd" in responses.column_names else pa.nulls(responses.num_rows, pa.float64())
    )
    table = pa.table(
        {
            "model": responses["model"],
            "prompt_tokens": responses["prompt_tokens"].cast(pa.int64()),
            "completion_tokens": responses["completion_tokens"].cast(pa.int64()),
            "failed": pc.is_valid(responses["error"]),
            "cost_usd": costs.cast(pa.float64()),
        }
    )
    grouped = table.group_by("model").aggregate(
        [
            ("model", "count"),
            ("failed", "sum"),
            ("prompt_tokens", "sum"),
            ("completion_tokens", "sum"),
            ("cost_usd", "sum"),
            ("cost_usd", "count"),
        ]
    )
    out: dict[str, dict[str, Any]] = {}
    for row in grouped.to_pylist():
        out[row["model"]] = {
            "responses": row["model_count"],
            "errors": int(row["failed_sum"] or 0),
            "prompt_tokens": int(row["prompt_tokens_sum"] or 0),
            "completion_tokens": int(row["completion_tokens_sum"] or 0),
            "cost_usd": float(row["cost_usd_sum"]) if row["cost_usd_count"] else None,
        }
    return out


def add_usage(total: dict[str, dict[str, Any]], more: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``total`` plus ``more`` (both :func:`usage_by_model` results), per model; ``total`` is updated."""
    for model, u in more.items():
        t = total.setdefault(
            model, {"responses": 0, "errors": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": None}
        )
        for name in ("responses", "errors", "prompt_tokens", "completion_tokens"):
            t[name] += u[name]
        if u["cost_usd"] is not None:
            t["cost_usd"] = (t["cost_usd"] or 0.0) + u["cost_usd"]
    return total


def commit_responses(store: ArtifactStore, ref: StageRef, attrs: dict[str, Any]) -> Manifest:
    return store.writer(ref, SEVAL_RESPONSES, RESPONSE_KEYS).commit(attrs)
