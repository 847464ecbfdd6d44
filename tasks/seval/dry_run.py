"""``seval run --dry-run``: how many target calls a run would still make, and what they cost.

Nothing is written and neither Prefect nor Ray starts: the suite is the run's ``suite`` stage
when it exists, else built in memory exactly as the run would build it; each target's
answered keys are anti-joined away (a resumed run only pays for the rest); for HTTP targets
with a known model id the cross-run LLM cache is asked too (one listing per namespace), so
calls it would answer count as free. Estimates: prompt tokens from the text
(``models/llm/limits.estimate_prompt_tokens``), completion tokens = ``max_tokens`` (an upper
bound); cost only with the endpoint's prices (``llm_endpoints.NAME.price_per_1k_*``).
"""

from __future__ import annotations

from typing import Any

import pyarrow.compute as pc

from trustflow import names
from trustflow.data.schemas import SEVAL_RESPONSES
from trustflow.data.store import ArtifactStore, StageRef
from trustflow.models.llm.base import ChatRequest, GenParams
from trustflow.models.llm.limits import cost_usd, estimate_prompt_tokens
from trustflow.tasks.seval.responses import RESPONSE_KEYS, gen_config_hash, is_http_spec
from trustflow.tasks.seval.stages import suite_table

FLOW = names.SEVAL_EVALUATE


def _cached_uids(store: ArtifactStore, spec: str, requests: list[ChatRequest]) -> set[str] | None:
    """Prompt uids (request ids) the LLM cache would answer; None when checking is not cheap
    (in-process models: their fingerprint hashes the weights; ``openai:`` without ``#MODEL``)."""
    if not is_http_spec(spec) or (spec.startswith("openai:") and "#" not in spec):
        return None
    from trustflow.models.llm.cache import LLMCache, cache_key, cacheable, gen_config, model_fingerprint, namespace_of

    cache = LLMCache(store)
    fingerprint = model_fingerprint(spec)
    found: set[str] = set()
    for req in requests:
        if not cacheable(req):
            continue
        config = gen_config(req)
        if cache_key(fingerprint, config, req.message_dicts()) in cache.keys(namespace_of(fingerprint, config)):
            found.add(str(req.id))
    return found


def plan_run(
    store: ArtifactStore,
    run_id: str,
    targets: list[str],
    suite: str,
    langs: list[str],
    per_dimension: int,
    attacks: list[str] | None,
    attacks_per_base: int | None,
    seed: int,
    max_tokens: int,
    cache: bool = True,
) -> dict[str, Any]:
    """Per target: prompts, already answered, cache hits, requests to make, estimated tokens
    and cost (None without prices); plus totals."""
    from trustflow.models.llm.spec import endpoint_prices

    ref = StageRef(FLOW, run_id, names.SUITE)
    if store.manifest(ref) is not None:
        table, source = store.read_table(ref), str(store.manifest(ref).attrs.get("source"))  # type: ignore[union-attr]
    else:
        table, source = suite_table(store, suite, langs, per_dimension, attacks, attacks_per_base, seed)
    params = GenParams(max_tokens=max_tokens, temperature=0.0, seed=seed)
    config = gen_config_hash(params, None)
    existing = store.writer(StageRef(FLOW, run_id, names.RESPONSES), SEVAL_RESPONSES, RESPONSE_KEYS).existing_keys()
    rows = table.select(["prompt_uid", "prompt"]).to_pylist()
    out: dict[str, Any] = {"run_id": run_id, "suite": {"rows": table.num_rows, "source": source}, "targets": {}}
    for spec in targets:
        done = existing.filter(
            pc.and_(pc.equal(existing["model"], spec), pc.equal(existing["gen_config_hash"], config))
        )
        answered = set(done["prompt_uid"].to_pylist())
        todo = [r for r in rows if r["prompt_uid"] not in answered]
        requests = [
            ChatRequest.of([{"role": "user", "content": r["prompt"]}], id=r["prompt_uid"], **params.model_dump())
            for r in todo
        ]
        cached = _cached_uids(store, spec, requests) if cache else set()
        paid = [q for q in requests if cached is None or q.id not in cached]
        prompt_tokens = sum(estimate_prompt_tokens(q.message_dicts()) for q in paid)
        completion_tokens = max_tokens * len(paid)
        out["targets"][spec] = {
            "prompts": len(rows),
            "answered": len(rows) - len(todo),
            "cache_hits": None if cached is None else len(cached),
            "requests": len(paid),
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "cost_usd": cost_usd(prompt_tokens, completion_tokens, *endpoint_prices(spec)),
        }
    per = list(out["targets"].values())
    costs = [t["cost_usd"] for t in per if t["cost_usd"] is not None]
    out["total"] = {
        "requests": sum(t["requests"] for t in per),
        "prompt_tokens": sum(t["prompt_tokens"] for t in per),
        "completion_tokens": sum(t["completion_tokens"] for t in per),
        "cost_usd": sum(costs) if costs else None,
    }
    return out
