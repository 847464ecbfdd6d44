"""Generate candidate test prompts per taxonomy leaf, translate them, and LLM-rewrite attacks.

Why pure functions over a :class:`ChatBackend`: the same code runs in a unit test (an
in-process model), on a laptop (a packaged model) and inside Ray actors of a Prefect flow
(vLLM / an OpenAI server); orchestration, retries and storage belong to the flow.

Throughput: every function hands the backend as many requests per ``generate`` call as it
can (all requests of a group of leaves, all translations of a chunk), because server and
vLLM backends batch or parallelise within a call. (The in-process transformers backend runs a
*seeded sampled* request in a micro-batch of its own so that its text does not depend on its
batch-mates: reproducibility over speed there.)

Determinism: every per-request seed, driver and exemplar choice comes from
:func:`~trustflow.tasks.seval.attacks.base.stable_rng` of the run seed and the request's
coordinates, and ``candidate_id`` is a hash of what produced the text, so a rerun with the
same seed and a deterministic backend reproduces ids and rows exactly.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from trustflow.data.seval.taxonomy import RiskNode, Taxonomy
from trustflow.errors import ConfigError, TrustflowError
from trustflow.models.llm.base import ChatBackend, ChatRequest, LLMError
from trustflow.tasks.seval.attacks import ATTACKS, ChatLLM
from trustflow.tasks.seval.attacks.base import stable_rng
from trustflow.tasks.seval.generation.drivers import drivers_for
from trustflow.tasks.seval.generation.parsing import parse_candidates, reason_kind
from trustflow.tasks.seval.generation.prompts import (
    build_generation_messages,
    default_taxonomy,
    generation_prompt_hash,
    sample_exemplars,
)
from trustflow.tasks.seval.generation.translate import build_translation_messages, translation_problem
from trustflow.tasks.seval.selection.embeddings import Embedder

Kind = Literal["base", "translation"]
_SEED_RANGE = 2**31 - 1


@dataclass(frozen=True)
class Candidate:
    """One generated (or translated) test prompt and everything needed to reproduce it.

    ``gen_seed`` is the seed sent with the request that produced the text; ``batch_index``
    is that request's index among its (leaf, lang)'s requests and ``item_index`` the
    prompt's position among what the parser kept from the reply. ``driver`` is the
    :class:`~trustflow.tasks.seval.generation.drivers.Driver` as JSON (facet ids).
    """

    candidate_id: str
    leaf_id: str
    dimension: str
    lang: str
    prompt: str
    from_id: str | None
    generator: str
    gen_seed: int
    item_index: int
    driver: str
    gen_prompt_hash: str
    kind: Kind
    batch_index: int = 0

    def as_row(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


CANDIDATE_COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Candidate))


def candidate_id_for(
    leaf_id: str, lang: str, gen_seed: int, batch_index: int, item_index: int, prompt: str, from_id: str | None = None
) -> str:
    """SHA-256 (24 hex) of what produced a candidate; translations also hash their source id."""
    parts = [leaf_id, lang, str(int(gen_seed)), str(int(batch_index)), str(int(item_index)), prompt]
    if from_id is not None:
        parts.append(from_id)
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:24]


def _derived_seed(*parts: object) -> int:
    return stable_rng(*parts).randrange(_SEED_RANGE)


@dataclass
class GenerationResult:
    """Candidates plus statistics: ``stats["per_leaf"]`` (one dict per (leaf, lang)) and
    ``stats["totals"]``."""

    candidates: list[Candidate]
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Job:
    leaf: RiskNode
    lang: str
    batch_index: int
    seed: int
    driver_json: str
    messages: list[dict[str, str]]
    exemplars: frozenset[str]


def _norm(text: str) -> str:
    return " ".join(text.casefold().split())


def _new_stats(leaf_id: str, lang: str) -> dict[str, Any]:
    return {
        "leaf_id": leaf_id,
        "lang": lang,
        "requests": 0,
        "errors": 0,
        "tester_refusals": 0,
        "parsed": 0,
        "discarded": 0,
        "discard_reasons": Counter(),
        "duplicates_across_requests": 0,
        "copied_exemplars": 0,
        "over_quota": 0,
        "kept": 0,
        "shortfall": 0,
        "completion_tokens": 0,
        "refusal_example": None,
    }


def generate_for_leaves(
    backend: ChatBackend,
    generator_spec: str,
    leaves: Sequence[RiskNode | str],
    langs: Sequence[str],
    per_leaf: int,
    exemplar_pool: Sequence[Mapping[str, Any]],
    seed: int,
    batch_n: int = 5,
    max_tokens: int = 768,
    temperature: float = 0.9,
    top_p: float = 0.95,
    leaves_per_call: int = 8,
    exemplars_k: int = 3,
    taxonomy: Taxonomy | None = None,
) -> GenerationResult:
    """Up to ``per_leaf`` parsed candidates per (leaf, lang).

    Each (leaf, lang) gets ``ceil(per_leaf / batch_n)`` requests, each asking for
    ``batch_n`` prompts with its own driver, exemplars and seed. The requests of up to
    ``leaves_per_call`` leaves (all languages) go to the backend in one ``generate`` call.
    Replies are parsed (a reply cut at ``max_tokens`` loses its unfinished last item);
    prompts that copy a shown exemplar or repeat an earlier request's prompt for the same
    (leaf, lang) are dropped, and at most ``per_leaf`` are kept (the rest count as
    ``over_quota``). A failed request counts in ``errors`` and yields nothing; ``shortfall``
    says how many a (leaf, lang) lacks, for a top-up run with another seed.
    """
    if per_leaf < 1 or batch_n < 1 or leaves_per_call < 1:
        raise ConfigError(
            f"generate_for_leaves: per_leaf, batch_n and leaves_per_call must be >= 1 "
            f"(got {per_leaf}, {batch_n}, {leaves_per_call})"
        )
    bad = [lang for lang in langs if lang not in ("zh", "en")]
    if bad:
        raise ConfigError(f"generate_for_leaves: languages must be 'zh' or 'en', got {bad}")
    tax = taxonomy or default_taxonomy()
    ids = dict.fromkeys(leaf if isinstance(leaf, str) else leaf.id for leaf in leaves)  # de-duplicated, in order
    nodes = [tax.node(leaf_id) for leaf_id in ids]
    n_req = math.ceil(per_leaf / batch_n)
    candidates: list[Candidate] = []
    per: dict[tuple[str, str], dict[str, Any]] = {}
    calls, t0 = 0, time.perf_counter()
    for g in range(0, len(nodes), leaves_per_call):
        jobs: list[_Job] = []
        for leaf in nodes[g : g + leaves_per_call]:
            for lang in langs:
                per.setdefault((leaf.id, lang), _new_stats(leaf.id, lang))
                for r, driver in enumerate(drivers_for(leaf.id, lang, seed, n_req)):
                    req_seed = _derived_seed("generation.request", int(seed), leaf.id, lang, r)
                    exemplars = sample_exemplars(exemplar_pool, leaf, lang, exemplars_k, req_seed)
                    messages = build_generation_messages(leaf, lang, batch_n, exemplars, driver, taxonomy=tax)
                    shown = frozenset(_norm(str(e.get("prompt", ""))) for e in exemplars)
                    jobs.append(_Job(leaf, lang, r, req_seed, driver.to_json(), messages, shown))
        if not jobs:
            continue
        requests = [
            ChatRequest.of(
                j.messages,
                max_tokens=max_tokens,
                temperature=temperature,
                top_p=top_p,
                seed=j.seed,
                id=f"{j.leaf.id}|{j.lang}|{j.batch_index}",
            )
            for j in jobs
        ]
        results = backend.generate(requests)
        calls += 1
        seen: dict[tuple[str, str], set[str]] = {}
        for job, res in zip(jobs, results, strict=True):
            key = (job.leaf.id, job.lang)
            st = per[key]
            st["requests"] += 1
            st["completion_tokens"] += res.completion_tokens
            if res.error:
                st["errors"] += 1
                continue
            parsed = parse_candidates(res.text, job.lang, batch_n, truncated=res.finish_reason == "length")
            st["discarded"] += len(parsed.discarded)
            st["discard_reasons"].update(reason_kind(reason) for _, reason in parsed.discarded)
            if parsed.tester_refused:
                st["tester_refusals"] += 1
                st["refusal_example"] = st["refusal_example"] or res.text.strip()[:200]
                continue
            st["parsed"] += len(parsed.prompts)
            keys = seen.setdefault(key, set())
            phash = generation_prompt_hash(job.messages)
            for i, prompt in enumerate(parsed.prompts):
                norm = _norm(prompt)
                if norm in job.exemplars:
                    st["copied_exemplars"] += 1
                    continue
                if norm in keys:
                    st["duplicates_across_requests"] += 1
                    continue
                keys.add(norm)
                if st["kept"] >= per_leaf:
                    st["over_quota"] += 1
                    continue
                st["kept"] += 1
                candidates.append(
                    Candidate(
                        candidate_id=candidate_id_for(job.leaf.id, job.lang, job.seed, job.batch_index, i, prompt),
                        leaf_id=job.leaf.id,
                        dimension=job.leaf.id.split(".", 1)[0],
                        lang=job.lang,
                        prompt=prompt,
                        from_id=None,
                        generator=generator_spec,
                        gen_seed=job.seed,
                        item_index=i,
                        driver=job.driver_json,
                        gen_prompt_hash=phash,
                        kind="base",
                        batch_index=job.batch_index,
                    )
                )
    rows = []
    for st in per.values():
        st["shortfall"] = max(0, per_leaf - st["kept"])
        st["discard_reasons"] = dict(sorted(st["discard_reasons"].items()))
        rows.append(st)
    totals: dict[str, Any] = {
        k: sum(st[k] for st in rows)
        for k in (
            "requests",
            "errors",
            "tester_refusals",
            "parsed",
            "discarded",
            "duplicates_across_requests",
            "copied_exemplars",
            "over_quota",
            "kept",
            "shortfall",
            "completion_tokens",
        )
    }
    totals.update(generate_calls=calls, wall_s=round(time.perf_counter() - t0, 3), per_leaf=per_leaf, batch_n=batch_n)
    return GenerationResult(candidates, {"per_leaf": rows, "totals": totals})


def translate_candidates(
    backend: ChatBackend,
    generator_spec: str,
    candidates: Sequence[Candidate],
    seed: int,
    max_tokens: int = 384,
    temperature: float = 0.0,
    chunk_size: int = 64,
) -> tuple[list[Candidate], list[dict[str, Any]]]:
    """Each ``base`` candidate translated into the other language (zh→en, en→zh).

    Returns (translations, failures). A translation is a :class:`Candidate` with ``kind``
    ``"translation"``, ``from_id`` = its source's id, and the source's leaf, driver and
    indices. A failure is a dict (``candidate_id``, ``leaf_id``, ``src``, ``dst``,
    ``reason``, ``raw``). Translations are not translated again.
    """
    if chunk_size < 1:
        raise ConfigError(f"translate_candidates: chunk_size must be >= 1, got {chunk_size}")
    sources = [c for c in candidates if c.kind == "base"]
    translations: list[Candidate] = []
    failures: list[dict[str, Any]] = []
    for s in range(0, len(sources), chunk_size):
        chunk = sources[s : s + chunk_size]
        plan = []
        for c in chunk:
            dst = "en" if c.lang == "zh" else "zh"
            messages = build_translation_messages(c.prompt, c.lang, dst)
            plan.append((c, dst, messages, _derived_seed("generation.translate", int(seed), c.candidate_id)))
        results = backend.generate(
            [
                ChatRequest.of(m, max_tokens=max_tokens, temperature=temperature, seed=sd, id=c.candidate_id)
                for c, _, m, sd in plan
            ]
        )
        for (c, dst, messages, sd), res in zip(plan, results, strict=True):
            text: str | None
            reason: str | None
            if res.error:
                text, reason = None, f"error: {res.error}"
            else:
                text, reason = translation_problem(res.text, dst)
            if text is None:
                failures.append(
                    {
                        "candidate_id": c.candidate_id,
                        "leaf_id": c.leaf_id,
                        "src": c.lang,
                        "dst": dst,
                        "reason": reason,
                        "raw": (res.text or "")[:500],
                    }
                )
                continue
            translations.append(
                dataclasses.replace(
                    c,
                    candidate_id=candidate_id_for(
                        c.leaf_id, dst, sd, c.batch_index, c.item_index, text, from_id=c.candidate_id
                    ),
                    lang=dst,
                    prompt=text,
                    from_id=c.candidate_id,
                    generator=generator_spec,
                    gen_seed=sd,
                    gen_prompt_hash=generation_prompt_hash(messages),
                    kind="translation",
                )
            )
    return translations, failures


# --- LLM-rewritten attacks ---------------------------------------------------------------------


class BackendChatLLM:
    """A :class:`ChatBackend` as the attacks' :class:`ChatLLM`, with default chat parameters.

    ``BackendChatLLM(backend, temperature=0.7, max_tokens=512)``: call parameters override
    the defaults; a failed request raises ``LLMError``.
    """

    def __init__(self, backend: ChatBackend, **params: Any) -> None:
        self.backend = backend
        self.params = params

    def chat(self, messages: list[dict[str, str]], **params: Any) -> str:
        result = self.backend.generate([ChatRequest.of(messages, **{**self.params, **params})])[0]
        if result.error:
            raise LLMError(f"{self.backend.name}: {result.error}")
        return result.text


class _SeededLLM:
    """Adds per-rewrite chat parameters (a derived ``seed``): ``Attack.rewrite`` keeps its own
    ``seed`` argument for template choice and does not forward one to the chat."""

    def __init__(self, llm: ChatLLM, params: dict[str, Any]) -> None:
        self.llm = llm
        self.params = params

    def chat(self, messages: list[dict[str, str]], **params: Any) -> str:
        return self.llm.chat(messages, **{**self.params, **params})


def intent_similarity(base: str, rewritten: str, embedder: Embedder) -> float:
    """Cosine of the two texts' embeddings: how much of the base prompt's meaning survived."""
    v = embedder.embed([base, rewritten])
    return float(np.dot(v[0], v[1]))


def _row_id(row: Mapping[str, Any]) -> str:
    for key in ("candidate_id", "prompt_id", "base_id"):
        if row.get(key):
            return str(row[key])
    raise ConfigError(f"rewrite_attacks: a base row needs candidate_id or prompt_id; got keys {sorted(row)}")


def rewrite_attacks(
    llm: ChatLLM,
    base_rows: Sequence[Mapping[str, Any]],
    attack_names: Sequence[str],
    seed: int,
    embedder: Embedder,
    threshold: float = 0.75,
    max_workers: int = 1,
    **chat_params: Any,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """LLM-rewritten attack prompts for every (base row, attack), split into (kept, dropped).

    Base rows need ``candidate_id`` (or ``prompt_id``), ``lang`` and ``prompt``. Only attacks
    with ``supports_rewrite`` are accepted. Each rewrite goes through the attack's
    ``apply_rewrite`` (so rows carry the usual ``attack_id``) with a chat ``seed`` derived
    from (attack, base id, seed) unless ``chat_params`` sets one. A rewrite whose embedding
    cosine to its base prompt is below ``threshold`` has drifted from the risk being tested
    and is dropped (reason ``"intent drift: cosine 0.52 < 0.75"``); a rewrite that fails is
    dropped with ``"rewrite failed: ..."``. ``max_workers`` > 1 runs chats in threads (useful
    with server backends).
    """
    attacks = []
    for name in attack_names:
        cls = ATTACKS.get(name)
        if not cls.supports_rewrite:
            able = ", ".join(n for n in ATTACKS.names() if ATTACKS.get(n).supports_rewrite)
            raise ConfigError(f"attack {name!r} has no LLM rewrite mode; attacks that have one: {able}")
        attacks.append(cls())
    work = [(row, attack) for row in base_rows for attack in attacks]

    def one(item: tuple[Mapping[str, Any], Any]) -> dict[str, Any]:
        row, attack = item
        base_id = _row_id(row)
        seeded = _SeededLLM(
            llm, {"seed": _derived_seed("generation.rewrite", attack.name, base_id, int(seed)), **chat_params}
        )
        out: dict[str, Any] = {
            "base_id": base_id,
            "attack": attack.name,
            "lang": row["lang"],
            "base_prompt": row["prompt"],
            "leaf_id": row.get("leaf_id"),
            "dimension": row.get("dimension"),
        }
        try:
            ap = attack.apply_rewrite(base_id, row["prompt"], row["lang"], int(seed), seeded)
        except TrustflowError as exc:
            out["reason"] = f"rewrite failed: {exc}"
            return out
        out.update(ap.model_dump())
        return out

    if max_workers > 1:
        with ThreadPoolExecutor(max_workers=max_workers) as pool:
            rows = list(pool.map(one, work))
    else:
        rows = [one(w) for w in work]
    done = [r for r in rows if "reason" not in r]
    if done:
        a = embedder.embed([r["base_prompt"] for r in done])
        b = embedder.embed([r["prompt"] for r in done])
        for r, cos in zip(done, np.sum(a * b, axis=1), strict=True):
            r["intent_cosine"] = round(float(cos), 4)
            if cos < threshold:
                r["reason"] = f"intent drift: cosine {cos:.2f} < {threshold:.2f}"
    kept = [r for r in rows if "reason" not in r]
    dropped = [r for r in rows if "reason" in r]
    return kept, dropped
