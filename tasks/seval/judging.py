"""Critic judgements of target responses, on Ray (one actor per critic replica).

Critics are cheap to construct (identity only) and load their model on first use, so the
driver can compute keys — (response_id, critic_id, critic_prompt_hash) — without loading
anything. A response whose generation failed gets a judgement row with ``judge_error``
``generation_error: ...``: excluded from every rate, visible in the report.

After the critic, :func:`enrich_judgements` completes the unsafe verdicts on the driver,
before the stage is committed: risk tags from the taxonomy for every unsafe verdict
(``models/critics/risk_tags.py``: nearest leaves, whatever the critic) and an LLM rationale
for the riskiest ones, at most ``max_rationales`` per stage (``tasks/seval/rationale.py``).
It rewrites only the parts whose rows changed, each atomically under its own name, so it is
resumable like the rest: a re-run tags what is untagged and explains what is unexplained.

Schema v2: a stage written by v1 (no tag scores, no rationale columns) still reads through
:func:`read_judgements`, and a resumed v1 run has its parts rewritten as v2 first
(:func:`upgrade_parts`), because a stage's parts must share one schema version to commit.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from trustflow.data.schemas import SCHEMA_VERSION_KEY, SEVAL_JUDGEMENTS, upgrade_judgements
from trustflow.data.store import ArtifactStore, Manifest, StageRef, StageWriter
from trustflow.models.critics import Critic, JudgeItem, Judgement, make_critic
from trustflow.tasks.ray_actors import write_parts_in_threads, write_parts_with_actors
from trustflow.tasks.ray_parts import StoreSpec, missing_chunks, source_chunks

JUDGEMENT_KEYS = ["response_id", "critic_id", "critic_prompt_hash"]
CARRIED = ["response_id", "model", "prompt_uid", "set", "attack", "base_id", "lang", "dimension"]
RESPONSE_COLUMNS = [*CARRIED, "prompt", "response", "error"]
log = logging.getLogger(__name__)


def judgement_id(response_id: str, critic_id: str, critic_prompt_hash: str) -> str:
    """One short id for a judgement's three-column key (what reports and relabel CSVs show)."""
    return hashlib.sha256(f"{response_id}\x00{critic_id}\x00{critic_prompt_hash}".encode()).hexdigest()[:16]


def judgement_rows(rows: list[dict[str, Any]], judgements: list[Judgement]) -> pa.Table:
    out: dict[str, list] = {name: [] for name in SEVAL_JUDGEMENTS.names}
    for row, j in zip(rows, judgements, strict=True):
        for col in CARRIED:
            out[col].append(row[col])
        out["critic_id"].append(j.critic_id)
        out["critic_prompt_hash"].append(j.critic_prompt_hash)
        out["risk_score"].append(j.risk_score)
        out["unsafe"].append(j.unsafe)
        out["risk_tags"].append(list(j.risk_tags))
        out["explanation"].append(j.explanation)
        out["raw_output"].append(j.raw_output)
        out["judge_error"].append(j.judge_error)
        for col in ("risk_tag_scores", "tagger", "rationale", "rationale_model", "rationale_error"):
            out[col].append(None)  # filled for unsafe verdicts by enrich_judgements
    return pa.table(out, schema=SEVAL_JUDGEMENTS.schema)


def tag_unsafe(table: pa.Table, rows: list[dict[str, Any]], tagger: Any = None) -> pa.Table:
    """Risk tags for the unsafe verdicts of one batch, in the worker that judged it.

    Tagging embeds every unsafe request/answer with e5 (~0.1 s each on one CPU): done in the
    driver after judging, as before, it was the one serial stage of a large run (220,000
    prompts × 2 models ≈ 200,000 embeddings); here it runs where the verdicts are made, on
    as many actors as judge. ``enrich_judgements`` still tags what a worker did not (older
    runs, another taxonomy)."""
    from trustflow.models.critics.risk_tags import default_tagger

    unsafe = [i for i, flag in enumerate(table["unsafe"].to_pylist()) if flag]
    if not unsafe:
        return table
    tagger = tagger or default_tagger()
    found = tagger.tag(
        [JudgeItem(prompt=rows[i]["prompt"], response=rows[i]["response"], lang=_lang(rows[i]["lang"])) for i in unsafe]
    )
    tags: list[Any] = table["risk_tags"].to_pylist()
    scores: list[Any] = table["risk_tag_scores"].to_pylist()
    taggers: list[Any] = table["tagger"].to_pylist()
    for i, t in zip(unsafe, found, strict=True):
        tags[i], scores[i], taggers[i] = t.tags, t.scores, tagger.tagger_id
    for name, values in (("risk_tags", tags), ("risk_tag_scores", scores), ("tagger", taggers)):
        index = table.schema.get_field_index(name)
        table = table.set_column(index, table.schema.field(index), pa.array(values, table.schema.field(index).type))
    return table


def _lang(lang: str) -> Literal["zh", "en"]:
    return "zh" if lang == "zh" else "en"


class JudgeFactory:
    """Picklable recipe: each actor builds the critic once and judges batches (tagging the
    unsafe verdicts when ``risk_tags``); ``cache``: the store of the cross-run LLM response
    cache its chat calls go through (None: uncached)."""

    def __init__(self, critic_spec: str, cache: StoreSpec | None = None, risk_tags: bool = True) -> None:
        self.critic_spec = critic_spec
        self.cache = cache
        self.risk_tags = risk_tags

    def __call__(self) -> Judge:
        critic = make_critic(self.critic_spec)
        if self.cache is not None:
            from trustflow.models.llm.cache import LLMCache

            critic.use_llm_cache(LLMCache(self.cache.open()))
        return Judge(critic, self.risk_tags)


class Judge:
    """Judges one batch of response rows → SEVAL_JUDGEMENTS rows (generation errors pass
    through), risk-tagging the unsafe ones when ``risk_tags``."""

    def __init__(self, critic: Critic, risk_tags: bool = True) -> None:
        self.critic = critic
        self.risk_tags = risk_tags

    def __call__(self, rows: list[dict[str, Any]]) -> pa.Table:
        critic = self.critic
        answerable = [r for r in rows if not r["error"]]
        verdicts = iter(
            critic.judge(
                [
                    JudgeItem(prompt=r["prompt"], response=r["response"], lang=r["lang"], dimension=r["dimension"])
                    for r in answerable
                ]
            )
        )
        judgements = [
            next(verdicts)
            if not r["error"]
            else Judgement.error(critic.critic_id, critic.prompt_hash, "", f"generation_error: {r['error']}")
            for r in rows
        ]
        table = judgement_rows(rows, judgements)
        return tag_unsafe(table, rows) if self.risk_tags else table

    def counters(self) -> dict[str, int]:
        return self.critic.counters()


def judge_responses(
    store: ArtifactStore,
    ref: StageRef,
    responses: pa.Table | StageRef,
    critic_spec: str,
    batch_size: int = 8,
    num_actors: int = 1,
    num_cpus_per_actor: float = 1.0,
    cache: bool = True,
    risk_tags: bool = True,
    models: list[str] | None = None,
) -> dict[str, int]:
    """Judge every response not yet judged by this critic (no commit): on Ray actors, or in
    this process for an ``in_process`` critic (no Ray start; the caller then needs no
    cluster either, see ``needs_ray``). ``cache``: an LLM critic's chat calls go through the
    cross-run response cache in ``store`` (counts ``cache_lookups`` / ``cache_hits``).
    ``risk_tags``: tag unsafe verdicts as they are made. ``responses``: a table, or the ref of
    a committed responses stage (``models``: only theirs) whose parts the workers read
    themselves, so this process holds keys only (tasks/ray_parts.source_chunks)."""
    critic = make_critic(critic_spec)
    writer = store.writer(ref, SEVAL_JUDGEMENTS, JUDGEMENT_KEYS)
    upgrade_parts(writer)
    tag = f"{critic.critic_id}-{critic.prompt_hash}"[:40]
    if isinstance(responses, StageRef):
        chunks, count = source_chunks(
            store,
            responses,
            writer,
            RESPONSE_COLUMNS,
            batch_size,
            tag,
            "response_id",
            constants={"critic_id": critic.critic_id, "critic_prompt_hash": critic.prompt_hash},
            where=("model", models) if models is not None else None,
            max_parts=64,
        )
    else:
        keyed = responses.select(RESPONSE_COLUMNS)
        keyed = keyed.append_column("critic_id", pa.array([critic.critic_id] * keyed.num_rows, pa.string()))
        keyed = keyed.append_column("critic_prompt_hash", pa.array([critic.prompt_hash] * keyed.num_rows, pa.string()))
        chunks = missing_chunks(writer, keyed, RESPONSE_COLUMNS, batch_size, tag, "response_id", max_parts=64)
        count = responses.num_rows
    label = f"judging ({critic.critic_id})"
    factory = JudgeFactory(critic_spec, StoreSpec.of(store) if cache else None, risk_tags)
    if critic.in_process:  # same parts, same keys: a run may switch paths between resumes
        stats = write_parts_in_threads(
            store, ref, SEVAL_JUDGEMENTS, JUDGEMENT_KEYS, chunks, factory, workers=1, label=label, planned=True
        )
    else:
        stats = write_parts_with_actors(
            store,
            ref,
            SEVAL_JUDGEMENTS,
            JUDGEMENT_KEYS,
            chunks,
            factory,
            num_actors=num_actors,
            num_cpus_per_actor=num_cpus_per_actor,
            label=label,
            planned=True,  # chunks hold only rows the stage lacks
        )
    stats["responses"] = count
    return stats


def needs_ray(critic_spec: str) -> bool:
    """Whether judging with this critic uses Ray actors (so the caller must start Ray)."""
    return not make_critic(critic_spec).in_process


def commit_judgements(store: ArtifactStore, ref: StageRef, attrs: dict[str, Any]) -> Manifest:
    writer = store.writer(ref, SEVAL_JUDGEMENTS, JUDGEMENT_KEYS)
    upgrade_parts(writer)
    return writer.commit(attrs)


def read_judgements(
    store: ArtifactStore, ref: StageRef, columns: list[str] | None = None, filter: Any = None
) -> pa.Table:
    """A committed judgements stage of any schema version, as the current layout (``filter``:
    a pyarrow dataset expression on columns every version has, pushed down to the parts)."""
    table = upgrade_judgements(store.read_table(ref, filter=filter))
    return table.select(columns) if columns is not None else table


def _part_id(name: str) -> str:
    return name.removeprefix("part-").removesuffix(".parquet")


def _read_parts(writer: StageWriter) -> list[tuple[str, pa.Table, bytes]]:
    """(part id, table, schema version) of every part on storage, committed or not."""
    out = []
    for info in writer.part_files():
        table = pq.read_table(info.path, filesystem=writer.store.fs)
        version = (table.schema.metadata or {}).get(SCHEMA_VERSION_KEY, b"")
        out.append((_part_id(info.base_name), table, version))
    return out


def _nothing_to_enrich(
    writer: StageWriter, tagger_id: str | None, rationale_model: str | None
) -> dict[str, int] | None:
    """The stats of an enrichment with no work (every unsafe verdict tagged by ``tagger_id``,
    or tagging off, and no rationale model), read from four columns of the parts — or None
    when there is work, so that a large run whose workers tagged everything never turns its
    responses and judgements into Python rows in the driver."""
    if rationale_model:
        return None
    unsafe = untagged = unexplained = 0
    for info in writer.part_files():
        part = pq.read_table(info.path, columns=["unsafe", "tagger", "rationale"], filesystem=writer.store.fs)
        flagged = part.filter(pc.fill_null(part["unsafe"], False))
        unsafe += flagged.num_rows
        unexplained += flagged["rationale"].null_count
        if tagger_id is not None:
            untagged += flagged.num_rows - int(
                pc.sum(pc.fill_null(pc.equal(flagged["tagger"], tagger_id), False)).as_py() or 0
            )
    if untagged:
        return None
    return {"unsafe": unsafe, "tagged": 0, "rationales": 0, "rationale_errors": 0, "without_rationale": unexplained}


def upgrade_parts(writer: StageWriter) -> int:
    """Rewrite parts of an older judgements layout as the current one (new columns null),
    each atomically under its own name; returns how many were rewritten."""
    current = str(SEVAL_JUDGEMENTS.version).encode()
    rewritten = 0
    for info in writer.part_files():  # footers only: a current stage costs no data reads
        schema = pq.read_schema(info.path, filesystem=writer.store.fs)
        if (schema.metadata or {}).get(SCHEMA_VERSION_KEY, b"") != current:
            table = pq.read_table(info.path, filesystem=writer.store.fs)
            writer.write_part(upgrade_judgements(table.replace_schema_metadata(None)), _part_id(info.base_name))
            rewritten += 1
    if rewritten:
        log.info(
            "stage %s: %d judgement part(s) upgraded to schema v%d", writer.ref, rewritten, SEVAL_JUDGEMENTS.version
        )
    return rewritten


def enrich_judgements(
    store: ArtifactStore,
    ref: StageRef,
    responses: pa.Table | Callable[[], pa.Table],
    rationale_model: str | None = None,
    max_rationales: int = 200,
    tagger: Any = None,
    rationale_backend: Any = None,
    cache: Any = None,
    risk_tags: bool = True,
) -> dict[str, Any]:
    """Risk tags for every unsafe verdict not yet tagged by ``tagger``, then rationales for
    the riskiest unexplained ones while fewer than ``max_rationales`` rows hold one (no commit).

    ``responses`` supplies the text (the judgements stage holds ids only), or a function that
    reads it — called only when there is work, so a run whose workers tagged everything never
    loads its responses; verdicts whose response is not in it are left as they are. ``rationale_model=None`` writes no rationale.
    ``cache``: an ``LLMCache`` for the rationale model's calls (its counters come back as
    ``rationale_cache``)."""
    from trustflow.models.critics import JudgeItem
    from trustflow.models.critics.risk_tags import default_tagger
    from trustflow.tasks.seval.rationale import RationaleInput, write_rationales

    writer = store.writer(ref, SEVAL_JUDGEMENTS, JUDGEMENT_KEYS)
    upgrade_parts(writer)
    tagger = tagger or default_tagger()
    quick = _nothing_to_enrich(writer, tagger.tagger_id if risk_tags else None, rationale_model)
    if quick is not None:
        return quick
    if callable(responses):
        responses = responses()
    texts = {
        rid: (p, r, lang)
        for rid, p, r, lang in zip(
            responses["response_id"].to_pylist(),
            responses["prompt"].to_pylist(),
            responses["response"].to_pylist(),
            responses["lang"].to_pylist(),
            strict=True,
        )
    }
    parts = [(pid, table.to_pylist()) for pid, table, _ in _read_parts(writer)]
    rows = [(i, j, row) for i, (_, part_rows) in enumerate(parts) for j, row in enumerate(part_rows)]
    flagged = [(i, j, row) for i, j, row in rows if row["unsafe"] and row["response_id"] in texts]
    changed: set[int] = set()

    def item(row: dict[str, Any]) -> JudgeItem:
        prompt, response, lang = texts[row["response_id"]]
        return JudgeItem(prompt=prompt, response=response, lang="zh" if lang == "zh" else "en")

    to_tag = [(i, j, row) for i, j, row in flagged if risk_tags and row["tagger"] != tagger.tagger_id]
    for (i, _, row), tags in zip(to_tag, tagger.tag([item(row) for _, _, row in to_tag]), strict=True):
        row.update(risk_tags=tags.tags, risk_tag_scores=tags.scores, tagger=tagger.tagger_id)
        changed.add(i)

    stats: dict[str, Any] = {"unsafe": len(flagged), "tagged": len(to_tag), "rationales": 0, "rationale_errors": 0}
    have = sum(1 for _, _, row in rows if row["rationale"] is not None)
    budget = max(0, max_rationales - have)
    todo = sorted(
        (x for x in flagged if x[2]["rationale"] is None),
        key=lambda x: (-(x[2]["risk_score"] or 0.0), x[2]["response_id"]),
    )
    stats["without_rationale"] = max(0, len(todo) - budget) if rationale_model else len(todo)
    todo = todo[:budget] if rationale_model else []
    inputs = [
        RationaleInput(*texts[row["response_id"]][:2], lang=row["lang"], tags=tuple(row["risk_tags"] or ()))
        for _, _, row in todo
    ]
    if rationale_backend is None and cache is not None and inputs and rationale_model:
        from trustflow.models.llm.cache import with_cache
        from trustflow.models.llm.spec import load_backend, parse_spec

        model = rationale_model
        try:
            parse_spec(model)  # a bad spec: write_rationales reports "unavailable" per row, as uncached
            # loaded on the first miss: a pass whose rationales are all cached loads no model
            rationale_backend = with_cache(lambda: load_backend(model), model, cache)
        except Exception:  # noqa: BLE001 - write_rationales reports an unavailable model per row
            rationale_backend = None
    for (i, _, row), result in zip(
        todo, write_rationales(inputs, rationale_model or "", backend=rationale_backend), strict=True
    ):
        row.update(rationale=result.text, rationale_error=result.error, rationale_model=rationale_model)
        stats["rationales" if result.text else "rationale_errors"] += 1
        changed.add(i)
    for i in sorted(changed):
        part_id, part_rows = parts[i]
        writer.write_part(pa.Table.from_pylist(part_rows, schema=SEVAL_JUDGEMENTS.schema), part_id)
    counters = getattr(rationale_backend, "counters", None)
    if callable(counters):
        stats["rationale_cache"] = counters()
    return stats
