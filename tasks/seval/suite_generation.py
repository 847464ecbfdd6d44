"""Stages of test-suite generation: tester candidates, hardness, selection, translation, attacks.

Everything a stage produces lands in ``runs/seval_generate/<suite_id>/<stage>`` as Parquet
parts keyed so that a re-run skips finished work: the tester runs in Ray actors (one chunk
= one (leaf, language) group, one part each), reference-model answers and critic verdicts
reuse the evaluation pipeline's responder and judge actors, and selection runs on the
driver over the survivors (embeddings are the costly part: ~80 prompts/s with e5-small).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from trustflow import names
from trustflow.data.schemas import (
    SEVAL_CANDIDATES,
    SEVAL_GENERATED_SUITE,
    SEVAL_GENERATION_LOG,
    SEVAL_SELECTION_DROPS,
    SEVAL_SUITE,
)
from trustflow.data.store import ArtifactStore, StageRef, StageWriter
from trustflow.errors import ConfigError, InputError
from trustflow.tasks.ray_actors import write_parts_with_actors
from trustflow.tasks.ray_parts import Chunk, StoreSpec

FLOW = names.SEVAL_GENERATE
CANDIDATE_KEYS = ["candidate_id"]
CHEAP_FILTERS = {"quality", "minhash_dedup", "near_dedup", "on_target"}  # need no reference-model answers

DEFAULT_SELECTION: list[dict[str, Any]] = [
    {"name": "quality"},
    {"name": "minhash_dedup"},
    {"name": "near_dedup"},
    {"name": "on_target", "mode": "drop"},
    {"name": "hardness", "min_hardness": 0.0},
    {"name": "diversity", "k": 0},  # k filled from ``keep`` by the flow
    {"name": "balance", "per_group": 0},  # per_group filled from ``keep``
]


def suite_id_for(params: dict[str, Any]) -> str:
    """Same parameters → same suite id → a re-run resumes instead of starting over."""
    return "suite-" + hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:12]


def selection_specs(specs: Sequence[dict[str, Any]] | None, keep: int, has_refs: bool) -> list[dict[str, Any]]:
    """The configured pipeline with ``keep`` filled in; without reference models the hardness
    strategy is left out (there is nothing to rank by) and the others run unchanged."""
    out = []
    for spec in specs if specs is not None else DEFAULT_SELECTION:
        spec = dict(spec)
        if "name" not in spec:
            raise ConfigError(f"selection spec {spec!r} has no 'name'")
        if spec["name"] == "hardness" and not has_refs and specs is None:
            continue
        if spec["name"] == "diversity" and not spec.get("k"):
            spec["k"] = keep
        if spec["name"] == "balance" and not spec.get("per_group"):
            spec["per_group"] = keep
        out.append(spec)
    return out


def split_at_hardness(specs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Cheap filters first (they shrink what the reference models must answer), the rest after."""
    for i, spec in enumerate(specs):
        if spec["name"] not in CHEAP_FILTERS:
            return specs[:i], specs[i:]
    return specs, []


# ---------------------------------------------------------------- tester candidates


class TesterFactory:
    """Picklable recipe: an actor loads the tester once, then turns (leaf, lang) groups into candidates."""

    def __init__(
        self,
        spec: StoreSpec,
        suite_id: str,
        tester: str,
        per_leaf: int,
        seed: int,
        exemplars: list[dict[str, Any]],
        batch_n: int,
        max_tokens: int,
        temperature: float,
        cache: bool = True,
    ) -> None:
        self.spec, self.suite_id, self.tester, self.per_leaf, self.seed = spec, suite_id, tester, per_leaf, seed
        self.exemplars, self.batch_n, self.max_tokens, self.temperature = exemplars, batch_n, max_tokens, temperature
        self.cache = cache  # the tester's calls go through the cross-run LLM response cache

    def __call__(self) -> Callable[[dict[str, Any]], pa.Table]:
        from trustflow.data.seval.taxonomy import load_taxonomy
        from trustflow.models.llm.cache import LLMCache, with_cache
        from trustflow.models.llm.spec import load_backend
        from trustflow.tasks.seval.generation.generate import generate_for_leaves

        cache = LLMCache(self.spec.open()) if self.cache else None
        backend = with_cache(lambda: load_backend(self.tester), self.tester, cache)
        taxonomy = load_taxonomy()
        log_writer = StageWriter(
            self.spec.open(), StageRef(FLOW, self.suite_id, names.GENERATION_LOG), SEVAL_GENERATION_LOG, ["group_id"]
        )

        def run(payload: dict[str, Any]) -> pa.Table:
            leaf = taxonomy.node(payload["leaf_id"])
            result = generate_for_leaves(
                backend,
                self.tester,
                [leaf],
                [payload["lang"]],
                self.per_leaf,
                self.exemplars,
                self.seed,
                batch_n=self.batch_n,
                max_tokens=self.max_tokens,
                temperature=self.temperature,
            )
            log_rows = [_log_row(payload["part_id"], st) for st in result.stats["per_leaf"]]
            if log_rows:  # why items were dropped, refusals included, per (leaf, lang)
                log_writer.write_part(
                    pa.Table.from_pylist(log_rows, schema=SEVAL_GENERATION_LOG.schema), payload["part_id"]
                )
            return pa.Table.from_pylist([c.as_row() for c in result.candidates], schema=SEVAL_CANDIDATES.schema)

        return _WithCounters(run, backend)


class _WithCounters:
    """A row builder plus its backend's LLM cache counters (``ray_actors`` sums ``counters()``)."""

    def __init__(self, run: Callable[[dict[str, Any]], pa.Table], backend: Any) -> None:
        self.run, self.backend = run, backend

    def __call__(self, payload: dict[str, Any]) -> pa.Table:
        return self.run(payload)

    def counters(self) -> dict[str, int]:
        counters = getattr(self.backend, "counters", None)
        return dict(counters()) if callable(counters) else {}


def _log_row(group_id: str, st: dict[str, Any]) -> dict[str, Any]:
    row = {name: st.get(name) for name in SEVAL_GENERATION_LOG.names}
    row["group_id"] = group_id
    row["discard_reasons"] = json.dumps(dict(st.get("discard_reasons") or {}), sort_keys=True)
    return row


def generate_candidates(
    store: ArtifactStore,
    suite_id: str,
    leaves: list[str],
    langs: list[str],
    tester: str,
    per_leaf: int,
    seed: int,
    exemplars: list[dict[str, Any]],
    batch_n: int = 5,
    max_tokens: int = 256,
    temperature: float = 0.9,
    num_actors: int = 1,
    num_cpus_per_actor: float = 1.0,
    cache: bool = True,
) -> dict[str, int]:
    ref = StageRef(FLOW, suite_id, names.CANDIDATES)
    chunks = []
    for leaf_id in leaves:
        for lang in langs:
            part_id = hashlib.sha256(f"{leaf_id}\x00{lang}\x00{seed}".encode()).hexdigest()[:16]
            chunks.append(Chunk(part_id, {"leaf_id": leaf_id, "lang": lang, "part_id": part_id}))
    factory = TesterFactory(
        StoreSpec.of(store), suite_id, tester, per_leaf, seed, exemplars, batch_n, max_tokens, temperature, cache
    )
    stats = write_parts_with_actors(
        store,
        ref,
        SEVAL_CANDIDATES,
        CANDIDATE_KEYS,
        chunks,
        factory,
        num_actors=num_actors,
        num_cpus_per_actor=num_cpus_per_actor,
        label="tester candidates",
    )
    store.writer(ref, SEVAL_CANDIDATES, CANDIDATE_KEYS).commit({"tester": tester, "per_leaf": per_leaf, "seed": seed})
    log_ref = StageRef(FLOW, suite_id, names.GENERATION_LOG)
    store.writer(log_ref, SEVAL_GENERATION_LOG, ["group_id"]).commit({"tester": tester})
    return stats


def generation_stats(store: ArtifactStore, suite_id: str) -> dict[str, int]:
    log = store.read_table(StageRef(FLOW, suite_id, names.GENERATION_LOG)).to_pylist()
    return {
        "tester_calls": sum(r["requests"] for r in log),
        "tester_refusals": sum(r["tester_refusals"] for r in log),
        "tester_errors": sum(r["errors"] for r in log),
        "items_parsed": sum(r["parsed"] for r in log),
        "items_discarded": sum(r["discarded"] for r in log),
        "shortfall": sum(r["shortfall"] for r in log),
    }


# ---------------------------------------------------------------- hardness (reference panel + critic)


def as_eval_suite(candidates: pa.Table, source: str) -> pa.Table:
    """Candidates in the evaluation suite's shape, so the responder and judge actors take them as-is."""
    rows = [
        {
            "prompt_uid": f"base_risk:{c['lang']}:{c['candidate_id']}",
            "prompt_id": c["candidate_id"],
            "set": "base_risk",
            "attack": None,
            "base_id": c["candidate_id"],
            "lang": c["lang"],
            "dimension": c["dimension"],
            "prompt": c["prompt"],
            "source": source,
        }
        for c in candidates.to_pylist()
    ]
    return pa.Table.from_pylist(rows, schema=SEVAL_SUITE.schema)


def hardness_scores(
    store: ArtifactStore,
    suite_id: str,
    candidates: pa.Table,
    refs: list[str],
    critic: str,
    max_tokens: int,
    seed: int,
    batch_size: int,
    num_actors: int,
    num_cpus_per_actor: float,
    cache: bool = True,
    counters: dict[str, int] | None = None,
) -> dict[str, dict[str, Any]]:
    """candidate_id → {"hardness": share of reference models judged unsafe, "per_ref": {...}}.

    S-Eval keeps tests that elicit risk: a prompt every reference model answers safely says
    little about the next model. Judge errors are left out of the share (never counted as safe).
    ``cache``: reference answers and critic calls go through the LLM response cache; their
    counts are added to ``counters`` when given.
    """
    from trustflow.models.llm.base import GenParams
    from trustflow.models.llm.cache import sum_counters
    from trustflow.tasks.seval.judging import commit_judgements, judge_responses
    from trustflow.tasks.seval.responses import commit_responses, generate_responses

    suite = as_eval_suite(candidates, suite_id)
    resp_ref = StageRef(FLOW, suite_id, names.REF_RESPONSES)
    params = GenParams(max_tokens=max_tokens, temperature=0.0, seed=seed)
    used: list[dict[str, int]] = []
    for model in refs:
        used.append(
            generate_responses(
                store,
                resp_ref,
                suite,
                model,
                params,
                batch_size=batch_size,
                num_actors=num_actors,
                num_cpus_per_actor=num_cpus_per_actor,
                cache=cache,
            )
        )
    commit_responses(store, resp_ref, {"refs": refs})
    responses = store.read_table(resp_ref)
    import pyarrow.compute as pc

    wanted = pa.array(suite["prompt_uid"].to_pylist())
    responses = responses.filter(
        pc.and_(
            pc.is_in(responses["prompt_uid"], value_set=wanted), pc.is_in(responses["model"], value_set=pa.array(refs))
        )
    )
    judge_ref = StageRef(FLOW, suite_id, names.REF_JUDGEMENTS)
    used.append(
        judge_responses(
            store,
            judge_ref,
            responses,
            critic,
            batch_size=batch_size,
            num_actors=num_actors,
            num_cpus_per_actor=num_cpus_per_actor,
            cache=cache,
        )
    )
    if counters is not None:
        for name, n in sum_counters(used).items():
            counters[name] = counters.get(name, 0) + n
    commit_judgements(store, judge_ref, {"critic": critic})
    verdicts = store.read_table(judge_ref).to_pylist()
    out: dict[str, dict[str, Any]] = {}
    wanted_ids = set(candidates["candidate_id"].to_pylist())  # once, not per verdict
    for v in verdicts:
        cid = v["prompt_uid"].split(":", 2)[2]
        if v["model"] not in refs or cid not in wanted_ids:
            continue
        entry = out.setdefault(cid, {"per_ref": {}})
        entry["per_ref"][v["model"]] = None if v["judge_error"] else float(v["risk_score"])
        entry.setdefault("_unsafe", []).append(None if v["judge_error"] else bool(v["unsafe"]))
    for entry in out.values():
        judged = [u for u in entry.pop("_unsafe") if u is not None]
        entry["hardness"] = sum(judged) / len(judged) if judged else float("nan")
    return out


# ---------------------------------------------------------------- selection


@dataclass
class SelectionOutcome:
    kept: Any  # pandas.DataFrame
    dropped: Any  # pandas.DataFrame
    shortfall: dict[str, int] = field(default_factory=dict)
    reports: list[dict[str, Any]] = field(default_factory=list)


def candidates_frame(candidates: pa.Table, hardness: dict[str, dict[str, Any]] | None = None):  # noqa: ANN201 - pandas
    frame = candidates.to_pandas()
    frame.insert(
        0,
        "prompt_uid",
        [f"base_risk:{lang}:{cid}" for lang, cid in zip(frame["lang"], frame["candidate_id"], strict=True)],
    )
    if hardness is not None:
        frame["hardness"] = [hardness.get(cid, {}).get("hardness", float("nan")) for cid in frame["candidate_id"]]
    return frame


def run_selection(frame: Any, specs: list[dict[str, Any]], ctx: Any) -> SelectionOutcome:
    from trustflow.tasks.seval.selection.base import run_pipeline

    if not specs:
        import pandas as pd

        return SelectionOutcome(frame, pd.DataFrame(columns=[*frame.columns, "strategy", "reason"]))
    kept, dropped = run_pipeline(frame, specs, ctx)
    reports = [
        r if isinstance(r, dict) else getattr(r, "__dict__", {"report": str(r)}) for r in getattr(ctx, "reports", [])
    ]
    shortfall: dict[str, int] = {}
    for r in reports:
        for key, missing in (r.get("shortfall") or {}).items():
            shortfall["/".join(key) if isinstance(key, tuple) else str(key)] = int(missing)
    return SelectionOutcome(kept, dropped, shortfall, reports)


def drops_table(dropped: Any) -> pa.Table:
    rows = [
        {
            "prompt_uid": r["prompt_uid"],
            "strategy": r["strategy"],
            "reason": r["reason"],
            "leaf_id": r["leaf_id"],
            "lang": r["lang"],
            "prompt": r["prompt"],
        }
        for r in dropped.to_dict("records")
    ]
    return pa.Table.from_pylist(rows, schema=SEVAL_SELECTION_DROPS.schema)


# ---------------------------------------------------------------- translation and attacks


def translate_kept(
    backend: Any, tester: str, kept: list[dict[str, Any]], langs: list[str], seed: int, max_tokens: int
) -> tuple[list[dict[str, Any]], int]:
    """zh↔en translations of kept base prompts (linked by ``from_id``); returns rows and failures."""
    from trustflow.tasks.seval.generation.generate import Candidate, translate_candidates

    sources = [Candidate(**{k: row[k] for k in SEVAL_CANDIDATES.names}) for row in kept if _other(row["lang"]) in langs]
    if not sources:
        return [], 0
    translations, failures = translate_candidates(backend, tester, sources, seed, max_tokens)
    return [t.as_row() for t in translations], len(failures)


def _other(lang: str) -> str:
    return "en" if lang == "zh" else "zh"


def suite_rows(
    base: list[dict[str, Any]],
    attacks: pa.Table | None,
    suite_id: str,
    hardness: dict[str, dict[str, Any]],
    extra_scores: dict[str, dict[str, Any]],
) -> pa.Table:
    """Base rows then their attack rows, in the generated-suite schema (provenance on every row)."""
    rows = []
    by_id = {b["candidate_id"]: b for b in base}
    for b in base:
        scores = {
            **({"per_ref": hardness[b["candidate_id"]]["per_ref"]} if b["candidate_id"] in hardness else {}),
            **extra_scores.get(b["candidate_id"], {}),
        }
        h = hardness.get(b["candidate_id"], {}).get("hardness")
        rows.append(
            {
                "prompt_uid": f"base_risk:{b['lang']}:{b['candidate_id']}",
                "prompt_id": b["candidate_id"],
                "set": "base_risk",
                "attack": None,
                "base_id": b["candidate_id"],
                "lang": b["lang"],
                "dimension": b["dimension"],
                "prompt": b["prompt"],
                "source": suite_id,
                "leaf_id": b["leaf_id"],
                "template_id": None,
                "from_id": b.get("from_id"),
                "generator": b["generator"],
                "gen_seed": int(b["gen_seed"]),
                "driver": b["driver"],
                "hardness": None if h is None or h != h else float(h),
                "scores": json.dumps(scores, sort_keys=True),
            }
        )
    for a in attacks.to_pylist() if attacks is not None else []:
        b = by_id[a["base_id"]]
        rows.append(
            {
                "prompt_uid": f"attack:{a['lang']}:{a['attack_id']}",
                "prompt_id": a["attack_id"],
                "set": "attack",
                "attack": a["attack"],
                "base_id": a["base_id"],
                "lang": a["lang"],
                "dimension": b["dimension"],
                "prompt": a["prompt"],
                "source": suite_id,
                "leaf_id": b["leaf_id"],
                "template_id": a["template_id"],
                "from_id": None,
                "generator": b["generator"],
                "gen_seed": int(a["seed"]),
                "driver": b["driver"],
                "hardness": None,
                "scores": json.dumps(extra_scores.get(a["attack_id"], {}), sort_keys=True),
            }
        )
    return pa.Table.from_pylist(rows, schema=SEVAL_GENERATED_SUITE.schema)


def read_suite(store: ArtifactStore, suite_id: str) -> pa.Table:
    ref = StageRef(FLOW, suite_id, names.SUITE)
    if store.manifest(ref) is None:
        raise InputError(f"no generated suite {suite_id!r} in {store.url} (trustflow seval generate builds one)")
    return store.read_table(ref)


def reference_prompts(store: ArtifactStore, sources: Sequence[str]) -> list[str]:
    """Base prompts of existing suites or ingested S-Eval datasets: new tests must not repeat them."""
    import pyarrow.compute as pc

    out: list[str] = []
    for source in sources:
        if source.startswith("suite-"):
            table = read_suite(store, source)
        else:
            ref = StageRef(names.INGEST, source, names.PROMPTS)
            if store.manifest(ref) is None:
                raise InputError(
                    f"reference {source!r} is neither a generated suite nor an ingested dataset in {store.url}"
                )
            table = store.read_table(ref)
        table = table.filter(pc.equal(table["set"], "base_risk"))
        out.extend(table["prompt"].to_pylist())
    return out


# ---------------------------------------------------------------- inputs


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
    table = store.read_table(StageRef(names.INGEST, source, names.PROMPTS))
    table = table.filter(pc.equal(table["set"], "base_risk"))
    return [
        {"prompt": r["prompt"], "lang": r["lang"], "dimension": taxonomy.dimension_for_risk_type(r["risk_type"])}
        for r in table.to_pylist()
    ]
