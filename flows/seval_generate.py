"""S-Eval test generation flow: tester candidates → cheap filters → hardness → selection →
translation → attacks → a versioned suite in the store.

``seval_generate_suite`` composes the Prefect tasks of ``tasks/seval/stages.py``, each one
coarse Ray job (tester actors, reference-model actors, critic actors) or a driver-side step
(selection). The suite id is a hash of every parameter, so a re-run with the same parameters
resumes: finished tester groups, reference answers and verdicts are skipped by key, and the
suite stage is written once. ``seval_evaluate(suite="suite-…")`` evaluates models on the result.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from trustflow import names
from trustflow.data.store import ArtifactStore
from trustflow.errors import ConfigError
from trustflow.settings import load_settings
from trustflow.tasks.ray_parts import StoreSpec
from trustflow.tasks.seval.report import cache_summary, publish_suite
from trustflow.tasks.seval.selection.base import pipeline_hash
from trustflow.tasks.seval.stages import candidates_task, finish_suite_task, select_task
from trustflow.tasks.seval.suite_generation import resolve_leaves, selection_specs, suite_id_for

DEFAULT_TESTER = "pkg:smollm2-135m"  # it does not refuse to write risky test prompts
DEFAULT_REFS = ["pkg:qwen2.5-1.5b"]
DEFAULT_GEN_CRITIC = "default"


@flow(name=names.SEVAL_GENERATE, flow_run_name="generate-{suite_id}")
def seval_generate_suite(
    leaves: list[str] | None = None,
    per_leaf: int = 6,
    keep: int = 2,
    langs: list[str] = ["zh", "en"],  # noqa: B006 - Prefect copies parameters per run
    tester: str = DEFAULT_TESTER,
    critic: str = DEFAULT_GEN_CRITIC,
    refs: list[str] = DEFAULT_REFS,  # noqa: B006
    selection: list[dict[str, Any]] | None = None,
    against: list[str] = [],  # noqa: B006 - suites/datasets new tests must not duplicate
    parent: str | None = None,
    exemplars: str = "auto",
    translate: bool = True,
    attacks: list[str] | None = None,
    rewrite: bool = False,
    seed: int = 0,
    max_tokens: int = 200,
    ref_max_tokens: int = 64,
    actors: int = 1,
    suite_id: str | None = None,
    cache: bool = True,
) -> dict[str, Any]:
    """Generate, select and version a test suite; returns its id and what each stage kept.

    ``cache``: tester, reference and critic calls go through the cross-run LLM response cache
    (``False``: ``--no-cache``); not part of the suite id. ``cache`` in the result: hit rate."""
    bad = [lang for lang in langs if lang not in ("zh", "en")]
    if bad or not langs:
        raise ConfigError(f"langs: {bad or langs} — use zh and/or en")
    leaf_ids = resolve_leaves(leaves)
    specs = selection_specs(selection, keep, bool(refs))
    avoid = sorted(set(against) | ({parent} if parent else set()))
    params: dict[str, Any] = {
        "leaves": leaf_ids,
        "per_leaf": per_leaf,
        "keep": keep,
        "langs": langs,
        "tester": tester,
        "critic": critic,
        "refs": refs,
        "selection": pipeline_hash(specs),
        "against": avoid,
        "parent": parent,
        "exemplars": exemplars,
        "translate": translate,
        "attacks": attacks,
        "rewrite": rewrite,
        "seed": seed,
        "max_tokens": max_tokens,
        "ref_max_tokens": ref_max_tokens,
    }
    suite_id = suite_id or suite_id_for(params)
    settings = load_settings()
    store = ArtifactStore(settings.effective_store_url, settings)
    spec = StoreSpec.of(store)
    # translations are generated from kept prompts: generate in the first language only when translating
    gen_langs = langs[:1] if translate and len(langs) > 1 else langs
    generated = candidates_task(
        spec, suite_id, leaf_ids, gen_langs, tester, per_leaf, seed, exemplars, max_tokens, actors, cache
    )
    selected = select_task(spec, suite_id, specs, avoid, refs, critic, ref_max_tokens, seed, actors, cache)
    attrs = {
        "suite_id": suite_id,
        "parent_suite": parent,
        "strategy_config_hash": params["selection"],
        "selection": specs,
        **{
            k: params[k]
            for k in (
                "leaves",
                "per_leaf",
                "keep",
                "langs",
                "tester",
                "critic",
                "refs",
                "seed",
                "against",
                "translate",
                "attacks",
                "rewrite",
            )
        },
    }
    attrs["shortfall"] = selected["shortfall"]
    finished = finish_suite_task(
        spec,
        suite_id,
        selected["kept"],
        selected["hardness"],
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
    users = {
        f"tester {tester}": generated,
        "references and critic": selected,
        f"tester {tester} (translate/rewrite)": finished,
    }
    result = {
        "suite_id": suite_id,
        "generated": generated,
        "selected": {k: v for k, v in selected.items() if k not in ("kept", "hardness")},
        "suite": finished,
        "cache": cache_summary(cache, users),
    }
    publish_suite(suite_id, store.url, result)
    return result
