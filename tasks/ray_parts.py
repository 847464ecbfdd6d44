"""Write a keyed stage in parallel on Ray: one Ray task per chunk, one Parquet part each.

The shared shape of every parallel stage is "missing keys → chunks → parts":
:func:`missing_chunks` (or :func:`chunked` for a plain list) makes the chunks, then
:func:`write_parts_on_ray` (stateless work) or ``ray_actors.write_parts_with_actors`` (work
that needs a loaded model per actor) writes them. Chunks carry a deterministic ``part_id``; a chunk whose part already exists is skipped
without doing its work (cheap resume), and every built batch is anti-joined against keys
already in the stage before it is written (no duplicate rows even if chunking changed).
The driver commits the manifest once all parts are in.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from trustflow.data.schemas import VersionedSchema
from trustflow.data.store import ArtifactStore, StageRef, StageWriter
from trustflow.data.store.artifact_store import PARTS_DIR
from trustflow.data.store.retry import is_transient, short_cause
from trustflow.errors import StoreUnavailable, TrustflowError
from trustflow.progress import track
from trustflow.settings import Settings, load_settings


@dataclass(frozen=True)
class Chunk:
    """One unit of parallel work: a part id and the payload the builder turns into rows."""

    part_id: str
    payload: Any


T = TypeVar("T")

MAX_PART_ROWS = 2048  # largest part missing_chunks grows to (rows of one Ray call and one object)


def part_name(tag: str, keys: Sequence[object]) -> str:
    """``{tag}-{12 hex of SHA-256 over the keys}``: the same rows make the same part."""
    return f"{tag}-{hashlib.sha256(chr(0).join(str(k) for k in keys).encode()).hexdigest()[:12]}"


def chunked(
    items: Sequence[T],
    size: int,
    tag: str,
    *,
    key: Callable[[T], str] | None = None,
    payload: Callable[[list[T]], Any] | None = None,
) -> list[Chunk]:
    """Consecutive batches of ``size`` items as chunks.

    ``part_id`` is ``{tag}-{12 hex of SHA-256 over the batch's keys}`` when ``key`` is given (the
    same items make the same part whatever else is left to do), else ``{tag}-{batch index:06d}``.
    ``payload`` turns a batch into the chunk's payload (default: the list of items)."""
    if size < 1:
        raise ValueError(f"chunk size must be >= 1, got {size}")
    chunks = []
    for index, start in enumerate(range(0, len(items), size)):
        batch = list(items[start : start + size])
        part = f"{tag}-{index:06d}" if key is None else part_name(tag, [key(item) for item in batch])
        chunks.append(Chunk(part, batch if payload is None else payload(batch)))
    return chunks


def missing_chunks(
    writer: StageWriter,
    keyed: pa.Table,
    columns: Sequence[str],
    size: int,
    tag: str,
    key_column: str,
    *,
    max_parts: int | None = None,
    max_rows: int = MAX_PART_ROWS,
) -> list[Chunk]:
    """The rows of ``keyed`` whose keys the stage does not hold yet (``columns`` only), as
    chunks of at least ``size`` rows, each part named by its rows' ``key_column`` values.

    ``max_parts``: grow the chunks (up to ``max_rows``) so that the stage has about that many
    parts — a 220,000-prompt suite in parts of 8 would be 27,500 objects per model, each a
    commit-time listing entry and an S3 request; a small run keeps parts of ``size`` (fine
    resume). Payloads are compact Arrow tables (a slice would pickle its whole parent
    buffer); the worker turns one into row dicts (:func:`payload_rows`), so the driver never
    holds the run as Python objects."""
    todo = writer.missing(keyed).select(list(columns))
    if max_parts:
        size = max(size, min(max_rows, -(-todo.num_rows // max_parts)))
    if size < 1:
        raise ValueError(f"chunk size must be >= 1, got {size}")
    keys = todo[key_column].to_pylist()
    chunks = []
    for start in range(0, todo.num_rows, size):
        rows = todo.take(pa.array(range(start, min(start + size, todo.num_rows)), pa.int64()))
        chunks.append(Chunk(part_name(tag, keys[start : start + size]), rows))
    return chunks


def payload_rows(payload: Any) -> Any:
    """A chunk payload as the builders take it: Arrow tables become row dicts, and a
    :class:`PartSlice` is read from the store (in the worker)."""
    if isinstance(payload, PartSlice):
        payload = payload.read()
    return payload.to_pylist() if isinstance(payload, pa.Table) else payload


@dataclass(frozen=True)
class PartSlice:
    """A chunk payload that names its rows instead of carrying them: row ``rows`` (ascending
    positions) of the Parquet part at ``path`` of a committed source stage, ``columns`` only.

    The worker reads them itself (:meth:`read`: only the row groups that hold them), so the
    driver never holds a stage's input — at 2.2M prompts the suite and the responses are GBs
    of text, while a slice is a path and an int32 array. The source part must not change
    between planning and reading: committed stages are only ever rewritten as equal rows."""

    store: StoreSpec
    path: str
    rows: pa.Array
    columns: tuple[str, ...]

    def read(self) -> pa.Table:
        store = self.store.open()

        def load() -> pa.Table:
            part = pq.ParquetFile(self.path, filesystem=store.fs)
            first, last = self.rows[0].as_py(), self.rows[-1].as_py()
            groups, start, offset = [], 0, None
            for g in range(part.num_row_groups):
                end = start + part.metadata.row_group(g).num_rows
                if start <= last and end > first:
                    groups.append(g)
                    offset = start if offset is None else offset
                start = end
            table = part.read_row_groups(groups, columns=list(self.columns))
            return table.take(pc.subtract(self.rows, pa.scalar(offset or 0, self.rows.type)))

        return store.io(f"slice read of {self.path.rsplit('/', 1)[-1]}", load, path=self.path)


def _own_existing_keys(writer: StageWriter, constants: Mapping[str, str]) -> pa.Table:
    """The stage's keys whose ``constants`` columns hold these values (this model's or this
    critic's rows), read part by part and filtered as read: the other passes' rows of the same
    stage (2.2M rows of the first model when the second one is answered) never accumulate."""
    key_schema = pa.schema([writer.schema.schema.field(c) for c in writer.key_columns])
    tables = []
    for info in writer.part_files():
        keys = writer.store.io(
            f"key read of {info.base_name}",
            functools.partial(pq.read_table, info.path, columns=writer.key_columns, filesystem=writer.store.fs),
            stage=writer.ref,
        ).cast(key_schema)
        for name, value in constants.items():
            keys = keys.filter(pc.equal(keys[name], pa.scalar(value, key_schema.field(name).type)))
        if keys.num_rows:
            tables.append(keys)
    return pa.concat_tables(tables) if tables else key_schema.empty_table()


def source_chunks(
    store: ArtifactStore,
    source: StageRef,
    writer: StageWriter,
    columns: Sequence[str],
    size: int,
    tag: str,
    key_column: str,
    *,
    constants: Mapping[str, str] | None = None,
    where: tuple[str, Sequence[str]] | None = None,
    max_parts: int | None = None,
    max_rows: int = MAX_PART_ROWS,
) -> tuple[list[Chunk], int]:
    """(chunks, source rows selected): the rows of the committed ``source`` stage that ``writer``'s stage does not hold yet, as
    chunks of :class:`PartSlice` payloads (``columns`` of the source): the streamed form of
    :func:`missing_chunks`, whose driver memory does not grow with the stage.

    The driver reads the source part by part, and of each only the columns the output key
    needs: the output's key columns are source columns plus ``constants`` (e.g. the model
    and config of a responses stage). ``where``: (column, values) — only source rows whose
    ``column`` is one of ``values``. Chunks have at least ``size`` rows, grown (up to
    ``max_rows``) so the stage has about ``max_parts`` parts; a chunk never spans two source
    parts. Part ids hash the chunk's ``key_column`` values, so the same rows make the same
    part whatever else is left to do."""
    constants = dict(constants or {})
    manifest = store.require_manifest(source)
    existing = _own_existing_keys(writer, constants)
    if max_parts:
        estimate = max(0, manifest.rows - existing.num_rows)
        size = max(size, min(max_rows, -(-estimate // max_parts)))
    if size < 1:
        raise ValueError(f"chunk size must be >= 1, got {size}")
    from_source = [c for c in writer.key_columns if c not in constants]
    wanted = list(dict.fromkeys([*from_source, key_column, *([where[0]] if where else [])]))
    row = "__trustflow_row__"
    spec = StoreSpec.of(store)
    chunks: list[Chunk] = []
    selected = 0
    for part in manifest.parts:
        path = store.path(source.relpath, PARTS_DIR, part.name)
        keys = store.io(
            f"key read of {part.name}",
            functools.partial(pq.read_table, path, columns=wanted, filesystem=store.fs),
            stage=source,
        )
        keys = keys.append_column(row, pa.array(range(keys.num_rows), pa.int32()))
        if where is not None:
            keys = keys.filter(pc.is_in(keys[where[0]], value_set=pa.array(list(where[1]), keys[where[0]].type)))
        selected += keys.num_rows
        for name, value in constants.items():
            keys = keys.append_column(name, pa.array([value] * keys.num_rows, pa.string()))
        todo = writer.missing(keys, existing)
        for start in range(0, todo.num_rows, size):
            span = todo.slice(start, size)
            rows = pa.array(span[row].to_numpy().copy(), pa.int32())  # compact: a slice pickles its parent
            chunks.append(
                Chunk(part_name(tag, span[key_column].to_pylist()), PartSlice(spec, path, rows, tuple(columns)))
            )
    return chunks, selected


@dataclass(frozen=True)
class StoreSpec:
    """Non-secret description of a store, enough for a Ray worker to reopen it.

    ``retry_seconds`` travels too, so workers ride out store outages exactly as long as the
    driver does (``store.retry_seconds``), whatever their own environment says.
    """

    url: str
    s3_endpoint_url: str | None
    s3_region: str
    retry_seconds: float = 30.0

    @classmethod
    def of(cls, store: ArtifactStore) -> StoreSpec:
        s = store.settings
        return cls(store.url, s.s3_endpoint_url, s.s3_region, s.store.retry_seconds)

    def open(self) -> ArtifactStore:
        return _open_store(json.dumps([self.url, self.s3_endpoint_url, self.s3_region, self.retry_seconds]))


@functools.lru_cache(maxsize=4)
def _open_store(key: str) -> ArtifactStore:
    url, endpoint, region, retry_seconds = json.loads(key)
    settings: Settings = load_settings(
        s3_endpoint_url=endpoint, s3_region=region, store={"retry_seconds": retry_seconds}
    )
    return ArtifactStore(url, settings)


def _build_and_write(
    spec: StoreSpec,
    ref: StageRef,
    schema: VersionedSchema,
    key_columns: list[str],
    builder: Callable[[Any], pa.Table],
    chunk: Chunk,
    existing_keys: pa.Table,
) -> tuple[int, int]:
    """(rows written, rows skipped as already present) for one chunk."""
    writer = StageWriter(spec.open(), ref, schema, key_columns)
    table = builder(payload_rows(chunk.payload))
    todo = writer.missing(table, existing_keys)
    if todo.num_rows:
        writer.write_part(todo, chunk.part_id)
    return todo.num_rows, table.num_rows - todo.num_rows


def plan_chunks(
    store: ArtifactStore, ref: StageRef, schema: VersionedSchema, key_columns: list[str], chunks: list[Chunk]
) -> tuple[StageWriter, list[Chunk], dict[str, int]]:
    """The chunks still to run (their part is not on storage yet) and the stats to fill."""
    writer = store.writer(ref, schema, key_columns)
    done_parts = {info.base_name for info in writer.part_files()}
    todo = [c for c in chunks if f"part-{c.part_id}.parquet" not in done_parts]
    stats = {"chunks": len(chunks), "chunks_skipped": len(chunks) - len(todo), "rows_written": 0, "rows_skipped": 0}
    return writer, todo, stats


def reraise_task_error(exc: Exception, stage: object = None) -> None:
    """Surface a worker's ``TrustflowError`` as itself (one clear line), else re-raise.

    A store failure the store layer did not wrap (an ``OSError`` from pyarrow's S3 client
    that looks like an outage) becomes ``StoreUnavailable`` too, so no store failure inside
    Ray ends as a Ray traceback; the worker's traceback stays chained for the run log.
    """
    cause = getattr(exc, "cause", None)
    if isinstance(cause, TrustflowError):
        raise cause from None
    if isinstance(cause, OSError) and is_transient(cause):
        raise StoreUnavailable(
            f"store unavailable during a Ray task{f' of stage {stage}' if stage else ''}: {short_cause(cause)}",
            stage=str(stage) if stage else None,
            operation="Ray task",
        ) from exc
    raise exc


def write_parts_on_ray(
    store: ArtifactStore,
    ref: StageRef,
    schema: VersionedSchema,
    key_columns: list[str],
    chunks: list[Chunk],
    builder: Callable[[Any], pa.Table],
    num_cpus: float = 1.0,
) -> dict[str, int]:
    """Run ``builder`` over ``chunks`` on Ray and write each result as a part (no commit)."""
    import ray

    writer, todo, stats = plan_chunks(store, ref, schema, key_columns, chunks)
    if not todo:
        return stats
    existing = ray.put(writer.existing_keys())
    remote = ray.remote(num_cpus=num_cpus, max_retries=2)(_build_and_write)
    spec = StoreSpec.of(store)
    pending = [remote.remote(spec, ref, schema, key_columns, builder, c, existing) for c in todo]
    try:
        with track(f"{ref.stage} parts", len(todo)) as advance:
            waiting = list(pending)
            while waiting:
                ready, waiting = ray.wait(waiting, num_returns=1)
                written, skipped = ray.get(ready[0])
                stats["rows_written"] += written
                stats["rows_skipped"] += skipped
                advance(1)
    except ray.exceptions.RayTaskError as exc:
        for p in pending:
            ray.cancel(p)
        reraise_task_error(exc, ref)
    return stats


def ray_map(fn: Callable[..., Any], calls: Sequence[tuple[Any, ...]], label: str, num_cpus: float = 1.0) -> list[Any]:
    """``fn(*args)`` for each ``args`` in ``calls`` as Ray tasks; results in the order of ``calls``.

    Progress advances as tasks finish (``progress.track``); a worker's ``TrustflowError``
    surfaces as itself and the other tasks are cancelled."""
    import ray

    remote = ray.remote(num_cpus=num_cpus)(fn)
    pending = [remote.remote(*args) for args in calls]
    index = {ref: i for i, ref in enumerate(pending)}
    results: list[Any] = [None] * len(pending)
    try:
        with track(label, len(pending)) as advance:
            waiting = list(pending)
            while waiting:
                ready, waiting = ray.wait(waiting, num_returns=1)
                results[index[ready[0]]] = ray.get(ready[0])
                advance(1)
    except ray.exceptions.RayTaskError as exc:
        for ref in pending:
            ray.cancel(ref)
        reraise_task_error(exc)
    return results
