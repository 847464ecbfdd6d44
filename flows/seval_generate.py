"""S-Eval test generation flow: tester candidates → cheap filters → hardness → selection →
translation → attacks → a versioned suite in the store.

``seval_generate_suite`` composes Prefect tasks, each one coarse Ray job (tester actors,
reference-model actors, critic actors) or a driver-side step (selection). The suite id is a
hash of every parameter, so a re-run with the same parameters resumes: finished tester
groups, reference answers and verdicts are skipped by key, and the suite stage is written
once. ``seval_evaluate(suite="suite-…")`` evaluates models on the result.
"""

from __future__ import annotations

import json
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from trustflow.data.store import ArtifactStore, StageRef
from trustflow.errors import ConfigError
from trustflow.settings import load_settings
from trustflow.tasks.ray_parts import StoreSpec
from trustflow.tasks.seval.suite_generation import FLOW

DEFAULT_TESTER = "pkg:smollm2-135m"  # it does not refuse to write risky test prompts
DEFAULT_REFS = ["pkg:qwen2.5-1.5b"]
DEFAULT_GEN_CRITIC = "default"


def resolve_leaves(leaves: list[str] | None) -> list[str]:
    """Leaf ids, or any taxonomy node id standing for all leaves under it (``crimes`` → its leaves)."""
    from trustflow.data.seval.taxonomy import load_taxonomy

    taxonomy = load_taxonomy()
    all_leaves = [n.id for n in taxonomy.leaves()]
    if not leaves:
        return all_leaves
    out: list[str] = []
    for wanted in leaves:
        if wanted not in taxonomy:
            raise ConfigError(f"--leaves: {wanted!r} is not a taxonomy id (see docs/pipelines/seval-taxonomy.md)")
        out.extend(leaf for leaf in all_leaves if leaf == wanted or leaf.startswith(wanted + "."))
    return list(dict.fromkeys(out))


def exemplar_pool(store: ArtifactStore, source: str) -> list[dict[str, Any]]:
    """Style exemplars for the tester: an ingested S-Eval dataset's base prompts, or the seed suite."""
    import pyarrow.compute as pc

    from trustflow.data.seval.taxonomy import load_taxonomy
    from trustflow.tasks.ingest import list_datasets
    from trustflow.tasks.seval.suite import SEED_SUITE_FILE

    if source == "auto":
        found = [d for d in list_datasets(store) if d.kind == "seval"]
        source = found[0].dataset_id if found else "seed-suite"
    if source == "seed-suite":
        rows = [json.loads(line) for line in SEED_SUITE_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]
        return [{"prompt": r["prompt"], "lang": r["lang"], "dimension": r["dimension"]} for r in rows]
    taxonomy = load_taxonomy()
    table = store.read_table(StageRef("ingest", source, "prompts"))
    table = table.filter(pc.equal(table["set"], "base_risk"))
    return [
        {"prompt": r["prompt"], "lang": r["lang"], "dimension": taxonomy.dimension_for_risk_type(r["risk_type"])}
        for r in table.to_pylist()
    ]


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
) -> dict[str, int]:
    from trustflow.infra.ray_runtime import ensure_ray
    from trustflow.tasks.seval.stages import cpus_per_actor
    from trustflow.tasks.seval.suite_generation import generate_candidates, generation_stats

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
) -> dict[str, Any]:
    """Cheap filters, then reference answers + critic on the survivors only, then the rest."""
    import pandas as pd

    from trustflow.data.schemas import SEVAL_SELECTION_DROPS
    from trustflow.infra.ray_runtime import ensure_ray
    from trustflow.tasks.seval.selection.base import SelectionContext
    from trustflow.tasks.seval.selection.embeddings import E5Embedder
    from trustflow.tasks.seval.stages import cpus_per_actor
    from trustflow.tasks.seval.suite_generation import (
        candidates_frame,
        drops_table,
        hardness_scores,
        reference_prompts,
        run_selection,
        split_at_hardness,
    )

    store = spec.open()
    candidates = store.read_table(StageRef(FLOW, suite_id, "candidates"))
    ctx = SelectionContext(embedder=E5Embedder(), reference_prompts=reference_prompts(store, against))
    cheap, rest = split_at_hardness(specs)
    first = run_selection(candidates_frame(candidates), cheap, ctx)
    hardness: dict[str, dict[str, Any]] = {}
    if refs and len(first.kept):
        import pyarrow as pa
        import pyarrow.compute as pc

        ensure_ray(store.settings)
        survivors = candidates.filter(
            pc.is_in(candidates["candidate_id"], value_set=pa.array(first.kept["candidate_id"].tolist(), pa.string()))
        )
        hardness = hardness_scores(
            store,
            suite_id,
            survivors,
            refs,
            critic,
            max_tokens,
            seed,
            batch_size=8,
            num_actors=actors,
            num_cpus_per_actor=cpus_per_actor(actors),
        )
    if refs:  # the column exists even when nothing survived the cheap filters
        first.kept["hardness"] = [hardness.get(c, {}).get("hardness", float("nan")) for c in first.kept["candidate_id"]]
    second = run_selection(first.kept, rest, ctx)
    dropped = (
        pd.concat([d for d in (first.dropped, second.dropped) if len(d)], ignore_index=True)
        if len(first.dropped) or len(second.dropped)
        else first.dropped
    )
    drops_ref = StageRef(FLOW, suite_id, "selection_drops")
    if store.manifest(drops_ref) is None:
        store.write_stage(
            drops_ref,
            SEVAL_SELECTION_DROPS,
            drops_table(dropped) if len(dropped) else SEVAL_SELECTION_DROPS.schema.empty_table(),
            ["prompt_uid", "strategy"],
            {"specs": specs},
        )
    return {
        "kept": second.kept["candidate_id"].tolist(),
        "hardness": hardness,
        "dropped": int(len(dropped)),
        "dropped_by": {k: int(v) for k, v in (dropped["strategy"].value_counts().items() if len(dropped) else [])},
        "shortfall": {**first.shortfall, **second.shortfall},
    }


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
) -> dict[str, Any]:
    """Translations of kept prompts (zh↔en, linked by from_id), then attack variants; writes the suite."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from trustflow.data.schemas import SEVAL_CANDIDATES, SEVAL_GENERATED_SUITE
    from trustflow.tasks.seval.attacks import attack_table
    from trustflow.tasks.seval.suite_generation import suite_rows, translate_kept

    store = spec.open()
    ref = StageRef(FLOW, suite_id, "suite")
    done = store.manifest(ref)
    if done is not None:
        return {"rows": done.rows, **done.attrs.get("counts", {})}
    candidates = store.read_table(StageRef(FLOW, suite_id, "candidates"))
    kept = candidates.filter(
        pc.is_in(candidates["candidate_id"], value_set=pa.array(kept_ids, pa.string()))
    ).to_pylist()
    base = list(kept)
    translation_failures = 0
    backend = None
    if translate and len(langs) > 1 and kept:
        trans_ref = StageRef(FLOW, suite_id, "translations")
        if store.manifest(trans_ref) is None:
            from trustflow.models.llm.spec import load_backend

            backend = load_backend(tester)
            rows, translation_failures = translate_kept(backend, tester, kept, langs, seed, max_tokens)
            store.write_stage(
                trans_ref,
                SEVAL_CANDIDATES,
                pa.Table.from_pylist(rows, schema=SEVAL_CANDIDATES.schema),
                ["candidate_id"],
                {"failures": translation_failures},
            )
        base += store.read_table(trans_ref).to_pylist()
    extra_scores: dict[str, dict[str, Any]] = {}
    attack_rows = None
    if attacks != [] and base:
        base_table = pa.Table.from_pylist(
            [{"prompt_id": b["candidate_id"], "lang": b["lang"], "prompt": b["prompt"]} for b in base]
        )
        attack_rows = attack_table(base_table, seed, attacks)
        if rewrite:
            attack_rows, extra_scores = _rewrites(store, suite_id, tester, base, attack_rows, attacks, seed, backend)
    table = suite_rows(base, attack_rows, suite_id, hardness, extra_scores)
    counts = {
        "base": sum(1 for r in base),
        "translated": sum(1 for b in base if b.get("kind") == "translation"),
        "attack": 0 if attack_rows is None else attack_rows.num_rows,
        "translation_failures": translation_failures,
    }
    manifest = store.write_stage(ref, SEVAL_GENERATED_SUITE, table, ["prompt_uid"], {**attrs, "counts": counts})
    return {"rows": manifest.rows, **counts}


def _rewrites(
    store: ArtifactStore,
    suite_id: str,
    tester: str,
    base: list[dict[str, Any]],
    attack_rows: Any,
    attacks: list[str] | None,
    seed: int,
    backend: Any,
) -> tuple[Any, dict[str, dict[str, Any]]]:
    """LLM-rewritten variants for attacks that have a rewrite mode; drifted ones dropped with a reason."""
    import pyarrow as pa

    from trustflow.tasks.seval.attacks import ATTACKS
    from trustflow.tasks.seval.generation.generate import BackendChatLLM, rewrite_attacks
    from trustflow.tasks.seval.selection.embeddings import E5Embedder

    names = [n for n in (attacks or ATTACKS.names()) if ATTACKS.get(n).supports_rewrite]
    if not names:
        return attack_rows, {}
    if backend is None:
        from trustflow.models.llm.spec import load_backend

        backend = load_backend(tester)
    base_rows = [
        {"candidate_id": b["candidate_id"], "lang": b["lang"], "prompt": b["prompt"], "leaf_id": b["leaf_id"]}
        for b in base
    ]
    kept, dropped = rewrite_attacks(
        BackendChatLLM(backend, max_tokens=256, temperature=0.7), base_rows, names, seed, E5Embedder()
    )
    kept_table = pa.Table.from_pylist(kept, schema=attack_rows.schema) if kept else None
    scores = {r["attack_id"]: {"intent_cosine": r.get("intent_cosine")} for r in kept}
    _record_rewrite_drops(store, suite_id, dropped)
    merged = pa.concat_tables([attack_rows, kept_table]) if kept_table is not None else attack_rows
    return merged, scores


def _record_rewrite_drops(store: ArtifactStore, suite_id: str, dropped: list[dict[str, Any]]) -> None:
    import pyarrow as pa

    from trustflow.data.schemas import SEVAL_SELECTION_DROPS

    ref = StageRef(FLOW, suite_id, "rewrite_drops")
    if store.manifest(ref) is not None:
        return
    rows = [
        {
            "prompt_uid": f"attack:{d.get('lang', '')}:{d.get('attack_id', d.get('base_id', ''))}",
            "strategy": "intent_check",
            "reason": d.get("reason", ""),
            "leaf_id": d.get("leaf_id", ""),
            "lang": d.get("lang", ""),
            "prompt": d.get("prompt", ""),
        }
        for d in dropped
    ]
    store.write_stage(
        ref,
        SEVAL_SELECTION_DROPS,
        pa.Table.from_pylist(rows, schema=SEVAL_SELECTION_DROPS.schema),
        ["prompt_uid", "strategy"],
        {},
    )


@flow(name=FLOW, flow_run_name="generate-{suite_id}")
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
) -> dict[str, Any]:
    """Generate, select and version a test suite; returns its id and what each stage kept."""
    from trustflow.tasks.seval.selection.base import pipeline_hash
    from trustflow.tasks.seval.suite_generation import selection_specs, suite_id_for

    bad = [lang for lang in langs if lang not in ("zh", "en")]
    if bad or not langs:
        raise ConfigError(f"langs: {bad or langs} — use zh and/or en")
    leaf_ids = resolve_leaves(leaves)
    specs = selection_specs(selection, keep, bool(refs))
    params = {
        "leaves": leaf_ids,
        "per_leaf": per_leaf,
        "keep": keep,
        "langs": langs,
        "tester": tester,
        "critic": critic,
        "refs": refs,
        "selection": pipeline_hash(specs),
        "against": sorted(set(against) | ({parent} if parent else set())),
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
        spec, suite_id, leaf_ids, gen_langs, tester, per_leaf, seed, exemplars, max_tokens, actors
    )
    selected = select_task(spec, suite_id, specs, params["against"], refs, critic, ref_max_tokens, seed, actors)
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
    )
    result = {
        "suite_id": suite_id,
        "generated": generated,
        "selected": {k: v for k, v in selected.items() if k not in ("kept", "hardness")},
        "suite": finished,
    }
    _publish(suite_id, store, result)
    return result


def _publish(suite_id: str, store: ArtifactStore, result: dict[str, Any]) -> None:
    g, s, f = result["generated"], result["selected"], result["suite"]
    lines = [
        f"# Test suite `{suite_id}`",
        "",
        "| stage | count |",
        "|---|---:|",
        f"| tester calls | {g.get('tester_calls', 0)} |",
        f"| tester refusals | {g.get('tester_refusals', 0)} |",
        f"| candidates parsed | {g.get('items_parsed', 0)} |",
        f"| items discarded by the parser | {g.get('items_discarded', 0)} |",
        f"| dropped by selection | {s['dropped']} |",
        f"| base prompts kept | {f.get('base', 0)} (translated: {f.get('translated', 0)}) |",
        f"| attack prompts | {f.get('attack', 0)} |",
        "",
        "Dropped by strategy: " + (", ".join(f"{k} {v}" for k, v in sorted(s["dropped_by"].items())) or "none"),
        "",
        f"Short of quota: {', '.join(f'{k} ({v})' for k, v in s['shortfall'].items()) or 'none'}",
        f"Stages: `{store.url}/runs/{FLOW}/{suite_id}/`",
    ]
    create_markdown_artifact(key="seval-suite", markdown="\n".join(lines))
    create_table_artifact(
        key="seval-suite-drops",
        table=[{"strategy": k, "dropped": v} for k, v in sorted(s["dropped_by"].items())]
        or [{"strategy": "none", "dropped": 0}],
    )
