"""Stateful parallel work on Ray: an actor pool where each actor holds a loaded model.

Like ``ray_parts.write_parts_on_ray`` but for work that needs an expensive object (an LLM,
a critic) built once per actor: ``factory()`` runs inside each actor and returns the
function that turns a chunk's payload into rows. Each chunk becomes one Parquet part,
written by the actor itself (results stream to the store as they finish); chunks whose
part exists are skipped, and rows are anti-joined against keys already in the stage.

A builder may keep counters (``counters() -> dict[str, int]``, e.g. the LLM cache's hits):
they are summed over every actor (or the one threaded builder) into the returned stats.

``write_parts_in_threads`` does the same in the calling process with a thread per chunk in
flight, for I/O-bound work whose "model" is a remote server (an OpenAI-compatible
endpoint): there Ray buys nothing and costs a cluster start, an actor start, ~1 GB and CPU
that the server on the same machine needs, and one actor working chunk by chunk leaves the
endpoint idle at the end of every chunk.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

import pyarrow as pa

from trustflow.data.schemas import VersionedSchema
from trustflow.data.store import ArtifactStore, StageRef, StageWriter
from trustflow.errors import TrustflowError
from trustflow.progress import track
from trustflow.tasks.ray_parts import Chunk, StoreSpec, payload_rows, plan_chunks, reraise_task_error

RowBuilder = Callable[[Any], pa.Table]


class _PartActor:
    """Builds the worker function once, then writes one part per chunk."""

    def __init__(
        self,
        spec: StoreSpec,
        ref: StageRef,
        schema: VersionedSchema,
        key_columns: list[str],
        factory: Callable[[], RowBuilder],
    ) -> None:
        # The store is opened on first use, not here: a store failure inside ``__init__`` would
        # reach the driver only as the text of an ActorDiedError, while one raised by ``run``
        # arrives as the exception itself (StoreUnavailable: one line, see reraise_task_error).
        self.spec, self.ref, self.schema, self.key_columns = spec, ref, schema, key_columns
        self._writer: StageWriter | None = None
        self.build = factory()

    @property
    def writer(self) -> StageWriter:
        if self._writer is None:
            self._writer = StageWriter(self.spec.open(), self.ref, self.schema, self.key_columns)
        return self._writer

    def run(self, chunk: Chunk, existing: pa.Table) -> tuple[int, int]:
        table = self.build(payload_rows(chunk.payload))
        todo = self.writer.missing(table, existing)
        if todo.num_rows:
            self.writer.write_part(todo, chunk.part_id)
        return todo.num_rows, table.num_rows - todo.num_rows

    def ready(self) -> bool:
        return True

    def counters(self) -> dict[str, int]:
        return builder_counters(self.build)


def builder_counters(build: object) -> dict[str, int]:
    """A builder's own counters (e.g. LLM cache hits), when it keeps any (``counters()``)."""
    counters = getattr(build, "counters", None)
    return dict(counters()) if callable(counters) else {}


def _add_counters(stats: dict[str, int], counters: dict[str, int]) -> None:
    for name, n in counters.items():
        stats[name] = stats.get(name, 0) + int(n)


def _key_snapshot(writer: StageWriter, planned: bool) -> pa.Table:
    """The stage's keys each batch is anti-joined against before its part is written: none
    when the chunks were planned against them already (their rows are known to be new)."""
    if planned:
        return pa.schema([writer.schema.schema.field(c) for c in writer.key_columns]).empty_table()
    return writer.existing_keys()


def write_parts_in_threads(
    store: ArtifactStore,
    ref: StageRef,
    schema: VersionedSchema,
    key_columns: list[str],
    chunks: list[Chunk],
    factory: Callable[[], RowBuilder],
    workers: int,
    label: str | None = None,
    planned: bool = False,
) -> dict[str, int]:
    """Run chunks in this process, ``workers`` chunks at a time, one shared builder; returns
    counts (no commit). The builder must be thread-safe (the OpenAI backend is: one bounded
    request pool shared by every call), so with ``workers`` ≥ its concurrency the endpoint
    always has a full queue instead of draining at each chunk's end. Parts are written as
    their chunk finishes (under a lock: one writer object); the first error stops new chunks
    and is raised after the running ones end. ``planned``: as for :func:`write_parts_with_actors`."""
    writer, todo, stats = plan_chunks(store, ref, schema, key_columns, chunks)
    if not todo:
        return stats
    existing = _key_snapshot(writer, planned)
    build = factory()
    write_lock = threading.Lock()

    def run(chunk: Chunk) -> tuple[int, int]:
        table = build(payload_rows(chunk.payload))
        with write_lock:
            new = writer.missing(table, existing)
            if new.num_rows:
                writer.write_part(new, chunk.part_id)
        return new.num_rows, table.num_rows - new.num_rows

    queue = list(reversed(todo))
    with (
        ThreadPoolExecutor(max_workers=max(1, min(workers, len(todo))), thread_name_prefix="parts") as pool,
        track(label or f"{ref.stage} batches", len(todo)) as advance,
    ):
        running: set[Future[tuple[int, int]]] = set()
        try:
            while queue or running:
                while queue and len(running) < max(1, workers):
                    running.add(pool.submit(run, queue.pop()))
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    written, skipped = future.result()
                    stats["rows_written"] += written
                    stats["rows_skipped"] += skipped
                    advance(1)
        except BaseException:
            queue.clear()
            for future in running:
                future.cancel()
            raise
        finally:
            _add_counters(stats, builder_counters(build))
            close = getattr(build, "close", None)
            if callable(close):
                close()
    return stats


def cpus_per_actor(actors: int) -> float:
    """Split the cluster's CPUs over the actors: Ray caps each actor's torch threads at its num_cpus."""
    import ray

    return max(1.0, float(int(ray.cluster_resources().get("CPU", 1)) // max(1, actors)))


def write_parts_with_actors(
    store: ArtifactStore,
    ref: StageRef,
    schema: VersionedSchema,
    key_columns: list[str],
    chunks: list[Chunk],
    factory: Callable[[], RowBuilder],
    num_actors: int = 1,
    num_cpus_per_actor: float = 1.0,
    num_gpus_per_actor: float = 0.0,
    label: str | None = None,
    planned: bool = False,
) -> dict[str, int]:
    """Run chunks through ``num_actors`` actors; returns counts (no commit).

    ``planned``: the chunks hold only rows whose keys the stage lacked when they were made
    (``missing_chunks`` / ``source_chunks`` anti-joined them already), so the workers skip
    re-checking each batch against a snapshot of the stage's keys — at 2.2M prompts that
    snapshot (the other model's rows included) cost every chunk a 2.2M-row hash join."""
    import ray
    from ray.util import ActorPool

    writer, todo, stats = plan_chunks(store, ref, schema, key_columns, chunks)
    if not todo:
        return stats
    existing = ray.put(_key_snapshot(writer, planned))
    actor_cls: Any = ray.remote(num_cpus=num_cpus_per_actor, num_gpus=num_gpus_per_actor, max_restarts=1)(_PartActor)
    spec = StoreSpec.of(store)
    actors = [
        actor_cls.remote(spec, ref, schema, key_columns, factory) for _ in range(max(1, min(num_actors, len(todo))))
    ]
    try:
        ray.get([a.ready.remote() for a in actors])
        pool = ActorPool(actors)
        with track(label or f"{ref.stage} batches", len(todo)) as advance:
            for written, skipped in pool.map_unordered(lambda actor, chunk: actor.run.remote(chunk, existing), todo):
                stats["rows_written"] += written
                stats["rows_skipped"] += skipped
                advance(1)
        for counters in ray.get([a.counters.remote() for a in actors]):
            _add_counters(stats, counters)
    except ray.exceptions.RayTaskError as exc:
        reraise_task_error(exc, ref)
    except ray.exceptions.RayActorError as exc:
        raise TrustflowError(
            f"{ref}: a worker actor died ({exc}); re-run to resume from the parts already written"
        ) from None
    finally:
        for actor in actors:
            ray.kill(actor)
    return stats
