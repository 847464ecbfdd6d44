"""The adaptive stage's work, called by its Prefect tasks (tasks/seval/stages.py): pick the
run's base prompts, build target / attacker / critic (behind the LLM cache), run the loop,
commit ``adaptive_turns``."""

from __future__ import annotations

import hashlib
from typing import Any

import pyarrow.compute as pc

from trustflow import names
from trustflow.data.store import ArtifactStore, StageRef
from trustflow.errors import ConfigError, InputError
from trustflow.models.critics import make_critic
from trustflow.models.llm.base import GenParams
from trustflow.models.llm.spec import parse_spec
from trustflow.tasks.seval.adaptive.base import get_adaptive
from trustflow.tasks.seval.adaptive.engine import LoopContext, commit_turns, run_loop

FLOW = names.SEVAL_EVALUATE
BASE_COLUMNS = ["prompt_uid", "base_id", "lang", "dimension", "prompt"]


def adaptive_plan(store: ArtifactStore, run_id: str, targets: list[str] | None, critic: str | None) -> dict[str, Any]:
    """{models: the run's judged models, targets, critic}; an unknown run, a target the run did
    not evaluate or a bad spec is one ``ConfigError`` naming it."""
    judged = store.manifest(StageRef(FLOW, run_id, names.JUDGEMENTS))
    if judged is None:
        raise ConfigError(f"run {run_id!r} has no judgements stage: run `trustflow seval run` first")
    models = sorted(
        set(store.read_table(StageRef(FLOW, run_id, names.JUDGEMENTS), columns=["model"])["model"].to_pylist())
    )
    chosen = targets or models
    for t in chosen:
        parse_spec(t)
        if t not in models:
            raise ConfigError(f"--targets: {t!r} is not a model of run {run_id} (models: {', '.join(models)})")
    critic_spec = critic or str(judged.attrs.get("critic") or "")
    if not critic_spec:
        raise ConfigError(f"run {run_id!r} does not record its critic: give --critic")
    made = make_critic(critic_spec)
    return {"models": models, "targets": chosen, "critic": critic_spec, "critic_id": made.critic_id}


def base_prompts(
    store: ArtifactStore, run_id: str, langs: list[str] | None, limit: int | None, seed: int
) -> list[dict[str, Any]]:
    """The run's base-risk prompts (``limit`` per language, a seeded hash order), as dicts."""
    suite = store.read_table(StageRef(FLOW, run_id, names.SUITE))
    suite = suite.filter(pc.equal(suite["set"], "base_risk")).select(BASE_COLUMNS)
    rows = suite.to_pylist()
    if langs:
        rows = [r for r in rows if r["lang"] in langs]
    rows.sort(key=lambda r: hashlib.sha256(f"{seed}\x00{r['prompt_uid']}".encode()).hexdigest())
    if limit is not None:
        kept: dict[str, int] = {}
        picked = []
        for r in rows:
            if kept.get(r["lang"], 0) < limit:
                kept[r["lang"]] = kept.get(r["lang"], 0) + 1
                picked.append(r)
        rows = picked
    if not rows:
        raise InputError(f"run {run_id}: no base prompts for languages {langs or 'any'}")
    return rows


def run_adaptive(
    store: ArtifactStore,
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
    """Every attack of ``attack_specs`` against one target (its model, the attacker's and the
    critic's loaded once for all of them; one backend when attacker and target are the same
    spec); commits ``adaptive_turns`` after each attack. One dict of counts per attack."""
    from trustflow.models.llm.cache import LLMCache, with_cache
    from trustflow.models.llm.spec import load_backend
    from trustflow.tasks.seval.responses import gen_config_hash

    attacks = [get_adaptive(spec) for spec in attack_specs]
    parse_spec(attacker)
    bases = base_prompts(store, run_id, langs, limit, seed)
    llm_cache = LLMCache(store) if cache else None
    target = with_cache(lambda: load_backend(model_spec), model_spec, llm_cache)
    tester = target if attacker == model_spec else with_cache(lambda: load_backend(attacker), attacker, llm_cache)
    critic = make_critic(critic_spec)
    if llm_cache is not None:
        critic.use_llm_cache(llm_cache)
    params = GenParams(max_tokens=max_tokens, temperature=0.0, seed=seed)  # the run's own target config
    ref = StageRef(FLOW, run_id, names.ADAPTIVE_TURNS)
    out = []
    try:
        for attack in attacks:
            before = _counters(target, tester)
            ctx = LoopContext(
                attack, target, tester, critic, model_spec, params, gen_config_hash(params, None), attacker, seed
            )
            stats = run_loop(store, ref, bases, ctx, group_size=group_size)
            manifest = commit_turns(store, ref, {"last_attack": attack.spec, "last_model": model_spec})
            after = _counters(target, tester)
            calls = {k: after[k] - before.get(k, 0) for k in after}  # this attack's own cache counts
            out.append({**stats, **calls, "attack": attack.spec, "model": model_spec, "loop_id": ctx.loop})
            out[-1]["rows"] = manifest.rows
    finally:
        target.close()
        if tester is not target:
            tester.close()
    return out


def _counters(target: Any, tester: Any) -> dict[str, int]:
    """LLM cache counters of the target and the attacker (the same ones when they are one backend)."""
    counts = {f"target_{k}": v for k, v in (getattr(target, "counters", dict)() or {}).items()}
    counts.update({f"attacker_{k}": v for k, v in (getattr(tester, "counters", dict)() or {}).items()})
    return counts
