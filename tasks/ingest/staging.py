"""Staging an ingestion source into the store, so Ray workers never read the driver's disk.

Why: a kind's builders run as Ray tasks and open the files their chunk names (image paths,
S-Eval archives) by the path the source was resolved to *on the driver*. On one machine
that is fine; on a cluster a worker node does not have that path. With staging on:

1. the driver uploads the resolved source once to ``staging/<fingerprint>/files/<name>``
   (content-addressed: the fingerprint names these exact bytes), one atomic object per file,
   skipping objects already there, and writes ``staging/<fingerprint>/manifest.json``
   (name → size) last; a rerun finds the manifest and uploads nothing;
2. each Ray task, before its builder runs, rewrites the paths of its chunk payload that lie
   under the source root to a node-local cache (``<tempdir>/trustflow-staged/<fingerprint>/``,
   or ``$TRUSTFLOW_STAGED_CACHE`` of the node), fetching only those files, each atomically
   (temp name, then rename) so tasks on one node share the copy;
3. string columns of the built table, and a ``TrustflowError``'s message, get the cache
   prefix mapped back to the source path, so staged rows equal unstaged rows.

The rewrite is generic (:func:`localise` walks tuples, lists, dicts, sets, dataclasses,
``Path`` and path strings), so every kind that builds through ``write_stage_on_ray`` (or
wraps its builder in :func:`staged`) is covered without code of its own.

When: ``ingest.stage_sources`` — ``auto`` (default) stages when Ray is joined by address
or has more than one alive node; ``always``/``never`` force it. Staging starts lazily, at
the first Ray fan-out, so kinds that read their source on the driver only (labels, texts,
speech, Gummel) never upload it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import copy
import dataclasses
import functools
import json
import logging
import os
import re
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path, PurePath
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from trustflow.data.sources import source_files
from trustflow.data.store import ArtifactStore
from trustflow.errors import InputError, StoreError, TrustflowError
from trustflow.tasks.ray_parts import StoreSpec

log = logging.getLogger(__name__)

STAGING_DIR = "staging"
FILES_DIR = "files"
MANIFEST = "manifest.json"
CACHE_ENV = "TRUSTFLOW_STAGED_CACHE"
UPLOAD_THREADS = 8  # S3 puts are latency-bound: a few in flight hide the round trips
FETCH_THREADS = 8  # the same for a task's GETs
_COPY_CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class StagedSource:
    """What a worker needs to find a staged source: the store, the fingerprint and the
    driver's source path (``root``: a folder, or one file when ``single``)."""

    store: StoreSpec
    fingerprint: str
    root: str
    single: bool

    def key(self, *parts: str) -> tuple[str, ...]:
        return (STAGING_DIR, self.fingerprint, *parts)

    # ---- the worker's side -----------------------------------------------------------
    def cache_dir(self) -> Path:
        """This node's copy: ``$TRUSTFLOW_STAGED_CACHE`` or the node's temp dir (never the
        driver's TRUSTFLOW_HOME, which Ray hands every worker but a worker node lacks)."""
        base = Path(os.environ.get(CACHE_ENV) or Path(tempfile.gettempdir()) / "trustflow-staged")
        return base / self.fingerprint[:32] / FILES_DIR

    def local_root(self) -> Path:
        """Where ``root`` lies in this node's copy."""
        return self.cache_dir() / Path(self.root).name if self.single else self.cache_dir()

    def names(self) -> dict[str, int]:
        """The staged files (name → size), read once per worker process."""
        return _staged_names(self.store, self.fingerprint)

    def fetch(self, name: str) -> Path:
        """The node-local copy of staged file ``name``, downloaded if this node lacks it."""
        target = self.cache_dir() / name
        if target.is_file():
            return target
        store = self.store.open()
        path = store.path(*self.key(FILES_DIR, name))
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")

        def download() -> None:
            with store.fs.open_input_stream(path) as src, open(tmp, "wb") as out:
                while chunk := src.read(_COPY_CHUNK):
                    out.write(chunk)

        try:
            store.io(f"staged read of {name}", download, path)
            size = tmp.stat().st_size
            if size != self.names()[name]:
                raise StoreError(
                    f"staged {name} of source {self.root}: {size} bytes in the store, the manifest says "
                    f"{self.names()[name]}; delete {store.url}/{STAGING_DIR}/{self.fingerprint}/ and re-run"
                )
            os.replace(tmp, target)  # another task of this node may have won: same bytes either way
        finally:
            tmp.unlink(missing_ok=True)
        return target

    def plan(self, path: str | PurePath, strict: bool) -> tuple[list[str], Path] | None:
        """(staged files to fetch, this node's path) for ``path`` when it lies under the
        source root; None when it does not. ``strict`` (a ``Path``): a folder means every
        staged file beneath it, and a path that was not staged (a hidden file) is an error;
        else (a string) only a staged file's exact path counts."""
        text = str(path)
        if text == self.root:
            rel = Path(self.root).name if self.single else ""
        elif not self.single and text.startswith(self.root.rstrip("/") + "/"):
            rel = PurePath(text).relative_to(self.root).as_posix()
        else:
            return None
        names = self.names()
        if rel in names:
            return [rel], self.cache_dir() / rel
        if not strict:  # a string is rewritten only when it names a staged file
            return None
        inside = [n for n in names if not rel or n.startswith(rel + "/")]
        if inside:
            return inside, self.cache_dir() / rel if rel else self.cache_dir()
        raise InputError(
            f"{text}: not in the staged copy of {self.root} (hidden files are not staged); "
            "set ingest.stage_sources=never to read it from the driver's disk"
        )

    def local(self, path: str | PurePath, strict: bool) -> Path | None:
        """This node's copy of ``path`` (fetched first) when it lies under the source root."""
        found = self.plan(path, strict)
        if found is None:
            return None
        for name in found[0]:
            self.fetch(name)
        return found[1]

    def prefetch(self, value: Any) -> int:
        """Fetch every staged file ``value``'s paths need that this node lacks, in parallel
        (one GET each: sequential, a chunk of 512 small images waited on 512 round trips);
        how many were fetched."""
        wanted: set[str] = set()
        for path in _paths_in(value):
            found = self.plan(path, strict=isinstance(path, PurePath))
            if found is not None:
                wanted.update(found[0])
        todo = sorted(n for n in wanted if not (self.cache_dir() / n).is_file())
        if len(todo) > 1:
            with concurrent.futures.ThreadPoolExecutor(min(FETCH_THREADS, len(todo))) as pool:
                list(pool.map(self.fetch, todo))
        else:
            for name in todo:
                self.fetch(name)
        return len(todo)

    def restore(self, table: pa.Table) -> pa.Table:
        """``table`` with this node's cache prefix in string columns mapped back to the
        source path (a kind that records where a row came from records the source)."""
        prefix, original = str(self.local_root()), self.root
        pattern = "^" + re.escape(prefix)
        replacement = original.replace("\\", "\\\\")
        for i, field in enumerate(table.schema):
            if not (pa.types.is_string(field.type) or pa.types.is_large_string(field.type)):
                continue
            column = table.column(i)
            if not pc.any(pc.starts_with(column, prefix)).as_py():
                continue
            table = table.set_column(i, field, pc.replace_substring_regex(column, pattern, replacement))
        return table


@functools.lru_cache(maxsize=8)
def _staged_names(spec: StoreSpec, fp: str) -> dict[str, int]:
    store = spec.open()
    data = json.loads(store.read_bytes(store.path(STAGING_DIR, fp, MANIFEST)))
    return {str(k): int(v) for k, v in data["files"].items()}


def _paths_in(value: Any) -> Iterator[str | PurePath]:
    """Every ``Path`` and string inside ``value`` (the containers :func:`localise` walks)."""
    if isinstance(value, (PurePath, str)):
        yield value
    elif isinstance(value, (list, tuple, set, frozenset)):
        for v in value:
            yield from _paths_in(v)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _paths_in(k)
            yield from _paths_in(v)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from _paths_in(getattr(value, f.name))


def localise(value: Any, staged: StagedSource) -> Any:
    """``value`` with every path under the source root replaced by this node's copy.

    Walks tuples (named ones too), lists, dicts, sets and dataclass instances; ``Path``
    objects under the root are always rewritten, strings only when they name a staged file
    or folder exactly (a message such as ``"<root>/a.json: annotation 3"`` is left alone).
    Containers that hold nothing to rewrite are returned as they are."""
    if isinstance(value, PurePath):
        found = staged.local(value, strict=True)
        return value if found is None else found
    if isinstance(value, str):
        found = staged.local(value, strict=False)
        return value if found is None else str(found)
    if value is None or isinstance(value, (bytes, int, float, bool, pa.Table, pa.Array)):
        return value
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [localise(v, staged) for v in value]
        if all(a is b for a, b in zip(items, value, strict=True)):
            return value
        make = getattr(type(value), "_make", None)  # a named tuple rebuilds from an iterable
        if isinstance(value, tuple) and make is not None:
            return make(items)
        return type(value)(items)
    if isinstance(value, dict):
        pairs = [(localise(k, staged), localise(v, staged)) for k, v in value.items()]
        if all(a is k and b is v for (a, b), (k, v) in zip(pairs, value.items(), strict=True)):
            return value
        return type(value)(pairs)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changed = {}
        for f in dataclasses.fields(value):
            old = getattr(value, f.name)
            new = localise(old, staged)
            if new is not old:
                changed[f.name] = new
        if not changed:
            return value
        out = copy.copy(value)
        for name, new in changed.items():
            object.__setattr__(out, name, new)  # frozen dataclasses too: this is a fresh copy
        return out
    return value


@dataclasses.dataclass(frozen=True)
class StagedBuilder:
    """A chunk builder that reads the staged copy: localise the payload, build, restore paths."""

    builder: Callable[[Any], pa.Table]
    staged: StagedSource

    def __call__(self, payload: Any) -> pa.Table:
        self.staged.prefetch(payload)
        local = localise(payload, self.staged)
        try:
            table = self.builder(local)
        except TrustflowError as exc:
            prefix = str(self.staged.local_root())
            if prefix in str(exc) and type(exc).__init__ is Exception.__init__ and len(exc.args) == 1:
                raise type(exc)(str(exc).replace(prefix, self.staged.root)) from None
            raise
        return self.staged.restore(table)


# ---- the driver's side -----------------------------------------------------------------
def stage_source(store: ArtifactStore, source: Path, fp: str) -> tuple[StagedSource, dict[str, int]]:
    """Upload ``source`` to ``staging/<fp>/`` (only objects not there yet) and write its
    manifest last; (what workers need, {"files", "uploaded", "bytes_uploaded"})."""
    staged = StagedSource(StoreSpec.of(store), fp, str(source), source.is_file())
    manifest_path = store.path(*staged.key(MANIFEST))
    files = source_files(source)
    stats = {"files": len(files), "uploaded": 0, "bytes_uploaded": 0}
    if store.io("staging manifest lookup", lambda: store.fs.get_file_info(manifest_path), manifest_path).is_file:
        return staged, stats
    prefix = store.path(*staged.key(FILES_DIR))
    selector = pafs.FileSelector(prefix, recursive=True, allow_not_found=True)
    listed = store.io("staging listing", lambda: store.fs.get_file_info(selector), prefix)
    have = {i.path[len(prefix) + 1 :]: i.size for i in listed if i.is_file}
    sizes = {name: f.stat().st_size for name, f in files}
    todo = [(name, f) for name, f in files if have.get(name) != sizes[name]]

    def upload(item: tuple[str, Path]) -> None:
        name, f = item

        def copy_into(out: Any) -> None:
            with open(f, "rb") as src:
                while chunk := src.read(_COPY_CHUNK):
                    out.write(chunk)

        store.write_atomic(store.path(*staged.key(FILES_DIR, name)), copy_into)

    with concurrent.futures.ThreadPoolExecutor(UPLOAD_THREADS) as pool:
        list(pool.map(upload, todo))
    stats["uploaded"] = len(todo)
    stats["bytes_uploaded"] = sum(sizes[name] for name, _ in todo)
    body = json.dumps({"fingerprint": fp, "source": str(source), "files": sizes}, sort_keys=True)
    store.write_bytes_atomic(manifest_path, body.encode())
    return staged, stats


def wants_staging(mode: str, ray_address: str | None) -> bool:
    """``ingest.stage_sources`` resolved: ``auto`` stages when workers may not share the
    driver's disk — Ray joined by address, or more than one alive node (Ray is running)."""
    if mode not in ("auto", "always", "never"):
        raise InputError(f"ingest.stage_sources must be auto, always or never, got {mode!r}")
    if mode != "auto":
        return mode == "always"
    if ray_address:
        return True
    ray = sys.modules.get("ray")  # not imported: not running, so no nodes to count
    return ray is not None and ray.is_initialized() and sum(1 for n in ray.nodes() if n.get("Alive")) > 1


@dataclasses.dataclass
class StagingPlan:
    """The source of the running ingest and the staging mode; stages on first use."""

    store: ArtifactStore
    source: Path
    fingerprint: str
    mode: str
    staged: StagedSource | None = None
    stats: dict[str, int] | None = None

    def resolve(self) -> StagedSource | None:
        if self.stats is None:
            self.stats = {"files": 0, "uploaded": 0, "bytes_uploaded": 0}
            if wants_staging(self.mode, self.store.settings.ray_address):
                self.staged, self.stats = stage_source(self.store, self.source, self.fingerprint)
                log.info(
                    "staged %s as %s/%s/%s: %d files, %d uploaded (%d bytes)",
                    self.source,
                    self.store.url,
                    STAGING_DIR,
                    self.fingerprint,
                    self.stats["files"],
                    self.stats["uploaded"],
                    self.stats["bytes_uploaded"],
                )
        return self.staged


_PLAN: contextvars.ContextVar[StagingPlan | None] = contextvars.ContextVar("trustflow_staging_plan", default=None)


@contextlib.contextmanager
def source_staging(plan: StagingPlan) -> Iterator[StagingPlan]:
    """Within: :func:`staged` builders read ``plan``'s source from the store when it says so."""
    token = _PLAN.set(plan)
    try:
        yield plan
    finally:
        _PLAN.reset(token)


def staged(builder: Callable[[Any], pa.Table]) -> Callable[[Any], pa.Table]:
    """``builder`` reading the staged source when the running ingest stages it (uploading it
    on first use); ``builder`` itself otherwise (no staging, or outside an ingest)."""
    plan = _PLAN.get()
    found = plan.resolve() if plan is not None else None
    return builder if found is None else StagedBuilder(builder, found)
