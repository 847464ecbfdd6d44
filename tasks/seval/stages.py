"""Prefect tasks of the S-Eval flows (evaluation and suite generation); each is one coarse
Ray job or one driver-side step. The flows in ``flows/seval_*.py`` only compose these."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from trustflow import names
from trustflow.data.schemas import SEVAL_SUITE
from trustflow.data.store import StageRef
from trustflow.infra.ray_runtime import ensure_ray
from trustflow.models.llm.base import GenParams
from trustflow.tasks.ingest import list_datasets
from trustflow.tasks.ray_actors import cpus_per_actor
from trustflow.tasks.ray_parts import StoreSpec

FLOW = names.SEVAL_EVALUATE


def suite_table(
    store: Any,
    suite: str,
    langs: list[str],
    per_dimension: int,
    attacks: list[str] | None,
    attacks_per_base: int | None,
    seed: int,
) -> tuple[Any, str]:
    """(suite table, its source) as a run with these options builds it (nothing written):
    the ``build-suite`` task and ``seval run --dry-run`` share it."""
    from trustflow.tasks.seval.suite import SEED_SOURCE, generated_suite, official_suite, seed_suite

    source = suite
    if suite == "auto":
        found = [d for d in list_datasets(store) if d.kind == "seval"]
        source = found[0].dataset_id if found else SEED_SOURCE
    if source == SEED_SOURCE:
        return seed_suite(langs, per_dimension, attacks, attacks_per_base, seed), source
    if source.startswith("suite-"):
        return generated_suite(store, source, langs, attacks), source
    return official_suite(store, source, langs, per_dimension, attacks, attacks_per_base, seed), source


@task(name="build-suite", cache_policy=NO_CACHE)
def build_suite_task(
    spec: StoreSpec,
    run_id: str,
    suite: str,
    langs: list[str],
    per_dimension: int,
    attacks: list[str] | None,
    attacks_per_base: int | None,
    seed: int,
) -> dict[str, Any]:
    """Write the ``suite`` stage once per run (a re-run reuses it, so every stage keys stay stable)."""
    store = spec.open()
    ref = StageRef(FLOW, run_id, names.SUITE)
    existing = store.manifest(ref)
    if existing is None:
        table, source = suite_table(store, suite, langs, per_dimension, attacks, attacks_per_base, seed)
        existing = store.write_stage(
            ref, SEVAL_SUITE, table, ["prompt_uid"], {"source": source, "langs": langs, "seed": seed}
        )
    return {"rows": existing.rows, "source": existing.attrs.get("source")}


@task(name="target-responses", task_run_name="responses-{model_spec}", cache_policy=NO_CACHE)
def responses_task(
    spec: StoreSpec,
    run_id: str,
    model_spec: str,
    params: dict[str, Any],
    batch_size: int,
    actors: int,
    concurrency: int = 8,
    cache: bool = True,
    budget: dict[str, Any] | None = None,
) -> dict[str, int]:
    """HTTP targets are answered in this process (no Ray); ``generate_responses`` starts Ray
    itself for in-process models. ``cache``: through the cross-run LLM response cache.
    ``budget``: ``Budget`` fields (cost/token limits and what earlier targets spent); when it
    is spent the task raises ``BudgetReached`` before committing (the parts stay for a resume)."""
    from trustflow.tasks.seval.responses import Budget, commit_responses, generate_responses

    store = spec.open()
    ref = StageRef(FLOW, run_id, names.RESPONSES)
    stats = generate_responses(
        store,
        ref,
        StageRef(FLOW, run_id, names.SUITE),  # workers read their prompts: the driver holds keys only
        model_spec,
        GenParams(**params),
        batch_size=batch_size,
        num_actors=actors,
        concurrency=concurrency,
        cache=cache,
        budget=Budget(**(budget or {})),
    )
    # the LLM cache counts of each model's last answering pass stay with the stage (attrs ``cache``)
    previous = store.manifest(ref)
    cache_by_model = dict(previous.attrs.get("cache", {})) if previous is not None else {}
    counts = {k: v for k, v in stats.items() if k.startswith("cache_")}
    if counts:  # a pass with nothing left to answer keeps the last pass's counts
        cache_by_model[model_spec] = counts
    commit_responses(store, ref, {"last_model": model_spec, "cache": cache_by_model})
    return stats


@task(name="usage-and-cost", cache_policy=NO_CACHE)
def usage_task(spec: StoreSpec, run_id: str, models: list[str]) -> dict[str, Any]:
    """Tokens and cost per model of the run's committed responses, plus the run's total
    (cost None when no model has prices)."""
    import pyarrow.compute as pc

    from trustflow.tasks.seval.responses import add_usage, usage_by_model

    store = spec.open()
    responses = StageRef(FLOW, run_id, names.RESPONSES)
    names_in_stage = set(store.dataset(responses).schema.names)
    columns = [c for c in ("model", "prompt_tokens", "completion_tokens", "error", "cost_usd") if c in names_in_stage]
    by_model: dict[str, dict[str, Any]] = {}
    for part in store.iter_parts(responses, columns=columns, filter=pc.field("model").isin(models)):
        add_usage(by_model, usage_by_model(part))  # part by part: flat memory
    costs = [u["cost_usd"] for u in by_model.values() if u["cost_usd"] is not None]
    total = {
        "prompt_tokens": sum(u["prompt_tokens"] for u in by_model.values()),
        "completion_tokens": sum(u["completion_tokens"] for u in by_model.values()),
        "cost_usd": sum(costs) if costs else None,
    }
    return {"by_model": by_model, "total": total}


@task(name="critic-judgements", task_run_name="judge-{critic_spec}", cache_policy=NO_CACHE)
def judge_task(
    spec: StoreSpec,
    run_id: str,
    critic_spec: str,
    models: list[str],
    batch_size: int,
    actors: int,
    rationale_model: str | None = None,
    max_rationales: int = 200,
    cache: bool = True,
    risk_tags: bool = True,
) -> dict[str, Any]:
    """Critic verdicts (with risk tags for the unsafe ones) on Ray actors, then (driver)
    bounded rationales and any tags still missing, then one commit (tasks/seval/judging.py)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from trustflow.models.critics import make_critic
    from trustflow.tasks.seval.judging import commit_judgements, enrich_judgements, judge_responses, needs_ray
    from trustflow.tasks.seval.rationale import prompt_hash

    store = spec.open()
    on_ray = needs_ray(critic_spec)
    if on_ray:
        ensure_ray(store.settings)
    responses_ref = StageRef(FLOW, run_id, names.RESPONSES)
    ref = StageRef(FLOW, run_id, names.JUDGEMENTS)
    stats = judge_responses(
        store,
        ref,
        responses_ref,  # workers read the responses they judge: the driver holds keys only
        critic_spec,
        models=models,
        batch_size=batch_size,
        num_actors=actors,
        num_cpus_per_actor=cpus_per_actor(actors) if on_ray else 1.0,  # no cluster for in-process critics
        cache=cache,
        risk_tags=risk_tags,
    )
    from trustflow.models.llm.cache import LLMCache

    def responses() -> pa.Table:  # the texts, read only when some verdict still needs a tag or rationale
        columns = ["response_id", "prompt", "response", "lang"]
        return store.read_table(responses_ref, columns=columns, filter=pc.field("model").isin(models))

    enriched = enrich_judgements(
        store,
        ref,
        responses,
        rationale_model,
        max_rationales,
        cache=LLMCache(store) if cache else None,
        risk_tags=risk_tags,
    )
    attrs = {"critic": critic_spec, "rationale_model": rationale_model, "max_rationales": max_rationales}
    commit_judgements(store, ref, {**attrs, "rationale_prompt_hash": prompt_hash(), "enriched": enriched})
    return {**stats, **enriched, "critic_id": make_critic(critic_spec).critic_id}


@task(name="metrics-and-report", cache_policy=NO_CACHE)
def metrics_task(
    spec: StoreSpec, run_id: str, critic_id: str, models: list[str], usage: dict[str, Any] | None = None
) -> dict[str, Any]:
    import pyarrow.compute as pc

    from trustflow.tasks.seval.metric_counts import count_judgements
    from trustflow.tasks.seval.report import JUDGEMENT_FRAME_COLUMNS, write_metrics

    store = spec.open()
    judgements_ref = StageRef(FLOW, run_id, names.JUDGEMENTS)
    # this critic's rows of these models, only the columns the metrics use (pushed down)
    wanted = pc.field("model").isin(models) & (pc.field("critic_id") == critic_id)
    turns_ref = StageRef(FLOW, run_id, names.ADAPTIVE_TURNS)  # adaptive attacks (tasks/seval/adaptive/), if run
    if store.manifest(turns_ref) is None:
        # counted batch by batch: the driver never holds a row per judgement
        parts = store.iter_parts(judgements_ref, columns=list(JUDGEMENT_FRAME_COLUMNS), filter=wanted)
        return write_metrics(store, FLOW, run_id, count_judgements(parts), critic_id, usage=usage)
    judgements = store.read_table(judgements_ref, columns=list(JUDGEMENT_FRAME_COLUMNS), filter=wanted)
    turns = store.read_table(turns_ref)
    return write_metrics(store, FLOW, run_id, judgements, critic_id, turns=turns, usage=usage)


# ---------------------------------------------------------------- suite generation


@task(name="tester-candidates", cache_policy=NO_CACHE)
def candidates_task(
    spec: StoreSpec,
    suite_id: str,
    leaves: list[str],
    langs: list[str],
    tester: str,
    per_leaf: int,
    seed: int,
    exemplars: str,
    max_tokens: int,
    actors: int,
    cache: bool = True,
) -> dict[str, int]:
    from trustflow.tasks.seval.suite_generation import exemplar_pool, generate_candidates, generation_stats

    store = spec.open()
    ensure_ray(store.settings)
    stats = generate_candidates(
        store,
        suite_id,
        leaves,
        langs,
        tester,
        per_leaf,
        seed,
        exemplar_pool(store, exemplars),
        max_tokens=max_tokens,
        num_actors=actors,
        num_cpus_per_actor=cpus_per_actor(actors),
        cache=cache,
    )
    return {**stats, **generation_stats(store, suite_id)}


@task(name="select-tests", cache_policy=NO_CACHE)
def select_task(
    spec: StoreSpec,
    suite_id: str,
    specs: list[dict[str, Any]],
    against: list[str],
    refs: list[str],
    critic: str,
    max_tokens: int,
    seed: int,
    actors: int,
    cache: bool = True,
) -> dict[str, Any]:
    """Cheap filters, then reference answers + critic on the survivors only, then the rest."""
    from trustflow.tasks.seval.suite_build import select_tests

    return select_tests(spec.open(), suite_id, specs, against, refs, critic, max_tokens, seed, actors, cache)


@task(name="translate-and-attack", cache_policy=NO_CACHE)
def finish_suite_task(
    spec: StoreSpec,
    suite_id: str,
    kept_ids: list[str],
    hardness: dict[str, dict[str, Any]],
    langs: list[str],
    tester: str,
    translate: bool,
    attacks: list[str] | None,
    rewrite: bool,
    seed: int,
    max_tokens: int,
    attrs: dict[str, Any],
    cache: bool = True,
) -> dict[str, Any]:
    """Translations of kept prompts (zh↔en, linked by from_id), then attack variants; writes the suite."""
    from trustflow.tasks.seval.suite_build import finish_suite

    return finish_suite(
        spec.open(),
        suite_id,
        kept_ids,
        hardness,
        langs,
        tester,
        translate,
        attacks,
        rewrite,
        seed,
        max_tokens,
        attrs,
        cache,
    )


# ---------------------------------------------------------------- adaptive attacks (issue 21)


@task(name="adaptive-plan", cache_policy=NO_CACHE)
def adaptive_plan_task(spec: StoreSpec, run_id: str, targets: list[str] | None, critic: str | None) -> dict[str, Any]:
    """The run's models and critic (defaults for the adaptive stage), checked before any call."""
    from trustflow.tasks.seval.adaptive.stage import adaptive_plan

    return adaptive_plan(spec.open(), run_id, targets, critic)


@task(name="adaptive-attacks", task_run_name="adaptive-{model_spec}", cache_policy=NO_CACHE)
def adaptive_task(
    spec: StoreSpec,
    run_id: str,
    model_spec: str,
    attack_specs: list[str],
    attacker: str,
    critic_spec: str,
    langs: list[str] | None,
    limit: int | None,
    max_tokens: int,
    seed: int,
    group_size: int = 32,
    cache: bool = True,
) -> list[dict[str, Any]]:
    """The adaptive attacks against one target on the run's base prompts (resumable; models
    loaded once for every attack); commits the ``adaptive_turns`` stage after each attack."""
    from trustflow.tasks.seval.adaptive.stage import run_adaptive

    return run_adaptive(
        spec.open(),
        run_id,
        model_spec,
        attack_specs,
        attacker,
        critic_spec,
        langs,
        limit,
        max_tokens,
        seed,
        group_size,
        cache,
    )
