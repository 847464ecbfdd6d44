"""S-Eval evaluation flow: suite → target responses → critic judgements → metrics/report."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from prefect import flow

from trustflow import names
from trustflow.data.store import ArtifactStore
from trustflow.settings import load_settings
from trustflow.tasks.ray_parts import StoreSpec
from trustflow.tasks.seval.rationale import DEFAULT_MAX_RATIONALES
from trustflow.tasks.seval.report import cache_summary, publish_evaluation
from trustflow.tasks.seval.responses import NANO
from trustflow.tasks.seval.stages import build_suite_task, judge_task, metrics_task, responses_task, usage_task

DEFAULT_TARGETS = ["pkg:smollm2-135m", "pkg:qwen2.5-1.5b"]
DEFAULT_CRITIC = "default"  # Qwen2.5-1.5B hidden-state probe: best measured offline critic (docs/pipelines/seval.md)


def default_run_id(**params: Any) -> str:
    """Same parameters → same run id, so re-running resumes instead of starting over."""
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return f"seval-{digest}"


@flow(name=names.SEVAL_EVALUATE, flow_run_name="seval-{run_id}")
def seval_evaluate(
    targets: list[str] = DEFAULT_TARGETS,
    critic: str = DEFAULT_CRITIC,
    suite: str = "auto",
    langs: list[str] = ["zh", "en"],  # noqa: B006 - Prefect parameters are copied per run
    per_dimension: int = 1,
    attacks: list[str] | None = None,
    attacks_per_base: int | None = 2,
    seed: int = 0,
    max_tokens: int = 96,
    batch_size: int = 8,
    actors: int = 1,
    concurrency: int = 8,
    run_id: str | None = None,
    rationale_model: str | None = None,
    max_rationales: int = DEFAULT_MAX_RATIONALES,
    cache: bool = True,
    risk_tags: bool = True,
    cost_limit: float | None = None,
    token_limit: int | None = None,
) -> dict[str, Any]:
    """Evaluate ``targets`` on an S-Eval suite with ``critic``; returns the leaderboard.

    ``concurrency``: requests kept in flight per HTTP target (not part of the run id: it
    changes speed, not answers).

    Risk tags are written for unsafe verdicts (by the judging workers). Rationales need an LLM, so the
    flow writes none unless ``rationale_model`` is given (``trustflow seval run
    --rationale-model pkg:qwen2.5-1.5b``); by default the demo, benchmarks and continuous
    evaluation keep their cost. The rationale options are not part of the run id: adding rationales later
    resumes the run and explains what is unexplained. ``risk_tags=False`` skips the tags
    (e5 embeddings, ~0.1 CPU-s per unsafe verdict): for load tests of the pipeline itself
    (benchmarks/scale_seval.py); a later run with tags on tags what is untagged.

    ``cache``: target and critic chat calls go through the cross-run LLM response cache in the
    store (models/llm/cache.py); ``False`` is ``--no-cache``. Not part of the run id (it
    changes cost, not answers); the result's ``cache`` block gives the hit rate.

    ``cost_limit`` (USD) / ``token_limit``: what this invocation may spend on target calls
    (cache hits are free), over all targets in order; once spent the flow stops with
    ``BudgetReached`` before committing the responses (a rerun resumes). Not part of the run
    id. The result's ``usage`` block: tokens and cost per model over the whole run."""
    run_id = run_id or default_run_id(
        targets=targets,
        critic=critic,
        suite=suite,
        langs=langs,
        per_dimension=per_dimension,
        attacks=attacks,
        attacks_per_base=attacks_per_base,
        seed=seed,
        max_tokens=max_tokens,
    )
    settings = load_settings()
    store = ArtifactStore(settings.effective_store_url, settings)
    spec = StoreSpec.of(store)
    suite_info = build_suite_task(spec, run_id, suite, langs, per_dimension, attacks, attacks_per_base, seed)
    params = {"max_tokens": max_tokens, "temperature": 0.0, "seed": seed}
    answered: dict[str, dict[str, int]] = {}
    spent = {"spent_cost": 0.0, "spent_tokens": 0}
    for target in targets:
        budget = {"cost_limit": cost_limit, "token_limit": token_limit, **spent}
        answered[target] = responses_task(
            spec, run_id, target, params, batch_size, actors, concurrency, cache, budget=budget
        )
        spent["spent_cost"] += answered[target].get("spent_cost_nusd", 0) / NANO
        spent["spent_tokens"] += answered[target].get("spent_tokens", 0)
    judged = judge_task(
        spec, run_id, critic, targets, batch_size, actors, rationale_model, max_rationales, cache, risk_tags=risk_tags
    )
    usage = usage_task(spec, run_id, targets)
    report = metrics_task(spec, run_id, judged["critic_id"], targets, usage)
    users = {**answered, f"critic {critic}": judged}
    if judged.get("rationale_cache"):
        users[f"rationales {rationale_model}"] = judged["rationale_cache"]
    cache_info = cache_summary(cache, users)
    publish_evaluation(run_id, store.url, suite_info, report, cache_info, usage)
    return {"run_id": run_id, "suite": suite_info, **report, "cache": cache_info, "usage": usage}
