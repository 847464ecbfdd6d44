"""Building a generated suite after the tester: selection with the reference panel's
hardness, then translation, attack variants and optional LLM rewrites, written as the
``suite`` stage. Driver-side logic; ``stages.py`` wraps each step as a Prefect task and
``suite_generation.py`` holds the tester, hardness and row-shaping pieces.
"""

from __future__ import annotations

from typing import Any

from trustflow import names
from trustflow.data.store import ArtifactStore, StageRef
from trustflow.tasks.seval.suite_generation import FLOW


def select_tests(
    store: ArtifactStore,
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
    """Cheap filters, then reference answers + critic on the survivors only  (on Ray), then the rest; writes the ``selection_drops`` stage once."""
    import pandas as pd

    from trustflow.data.schemas import SEVAL_SELECTION_DROPS
    from trustflow.infra.ray_runtime import ensure_ray
    from trustflow.tasks.ray_actors import cpus_per_actor
    from trustflow.tasks.seval.selection.base import SelectionContext
    from trustflow.tasks.seval.selection.embeddings import E5Embedder
    from trustflow.tasks.seval.suite_generation import (
        candidates_frame,
        drops_table,
        hardness_scores,
        reference_prompts,
        run_selection,
        split_at_hardness,
    )

    candidates = store.read_table(StageRef(FLOW, suite_id, names.CANDIDATES))
    ctx = SelectionContext(embedder=E5Embedder(), reference_prompts=reference_prompts(store, against))
    cheap, rest = split_at_hardness(specs)
    first = run_selection(candidates_frame(candidates), cheap, ctx)
    hardness: dict[str, dict[str, Any]] = {}
    counters: dict[str, int] = {}
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
            cache=cache,
            counters=counters,
        )
    if refs:  # the column exists even when nothing survived the cheap filters
        first.kept["hardness"] = [hardness.get(c, {}).get("hardness", float("nan")) for c in first.kept["candidate_id"]]
    second = run_selection(first.kept, rest, ctx)
    dropped = (
        pd.concat([d for d in (first.dropped, second.dropped) if len(d)], ignore_index=True)
        if len(first.dropped) or len(second.dropped)
        else first.dropped
    )
    drops_ref = StageRef(FLOW, suite_id, names.SELECTION_DROPS)
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
        **counters,
    }


def finish_suite(
    store: ArtifactStore,
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
    """Translations of kept prompts (zh↔en, linked by from_id), then attack variants; writes the
    suite. ``cache``: the tester's calls go through the LLM response cache (counts returned)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from trustflow.data.schemas import SEVAL_CANDIDATES, SEVAL_GENERATED_SUITE
    from trustflow.models.llm.cache import LLMCache, with_cache
    from trustflow.tasks.seval.attacks import attack_table
    from trustflow.tasks.seval.suite_generation import suite_rows, translate_kept

    ref = StageRef(FLOW, suite_id, names.SUITE)
    done = store.manifest(ref)
    if done is not None:
        return {"rows": done.rows, **done.attrs.get("counts", {})}
    candidates = store.read_table(StageRef(FLOW, suite_id, names.CANDIDATES))
    kept = candidates.filter(
        pc.is_in(candidates["candidate_id"], value_set=pa.array(kept_ids, pa.string()))
    ).to_pylist()
    base = list(kept)
    translation_failures = 0
    backend = None
    if translate and len(langs) > 1 and kept:
        trans_ref = StageRef(FLOW, suite_id, names.TRANSLATIONS)
        if store.manifest(trans_ref) is None:
            from trustflow.models.llm.spec import load_backend

            backend = with_cache(lambda: load_backend(tester), tester, LLMCache(store) if cache else None)
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
            if backend is None:
                from trustflow.models.llm.spec import load_backend

                backend = with_cache(lambda: load_backend(tester), tester, LLMCache(store) if cache else None)
            attack_rows, extra_scores = _rewrites(store, suite_id, tester, base, attack_rows, attacks, seed, backend)
    table = suite_rows(base, attack_rows, suite_id, hardness, extra_scores)
    counts = {
        "base": sum(1 for r in base),
        "translated": sum(1 for b in base if b.get("kind") == "translation"),
        "attack": 0 if attack_rows is None else attack_rows.num_rows,
        "translation_failures": translation_failures,
    }
    manifest = store.write_stage(ref, SEVAL_GENERATED_SUITE, table, ["prompt_uid"], {**attrs, "counts": counts})
    used = getattr(backend, "counters", None)
    return {"rows": manifest.rows, **counts, **(used() if callable(used) else {})}


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

    ref = StageRef(FLOW, suite_id, names.REWRITE_DROPS)
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
