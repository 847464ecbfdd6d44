"""Artifact store: keyed, resumable Parquet stages under ``runs/<flow>/<run_id>/<stage>/``.

Layout of one stage::

    runs/<flow>/<run_id>/<stage>/parts/part-<id>.parquet   written atomically, one per batch
    runs/<flow>/<run_id>/<stage>/_manifest.json            written last; readers use only this

Writes are atomic per file: on a local directory a part is written to a hidden temp name
and renamed; on S3 an object appears only when its upload completes. A stage is keyed:
``StageWriter.missing`` anti-joins a batch against keys already in the stage's parts (whether
or not a manifest lists them yet), so a re-run after a crash writes only what is missing
and ``commit`` refuses to publish duplicate keys.

Every S3 operation goes through :meth:`ArtifactStore.io`, which retries transient failures
(a store restarting, 5xx) for ``store.retry_seconds`` and then raises one
``StoreUnavailable`` naming the endpoint, the stage and the operation (``retry.py``).
Retried writes are safe: they go to the same deterministic key, whole or not at all.
"""

from __future__ import annotations

import functools
import json
import os
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq

import trustflow
from trustflow.data.schemas import SCHEMA_NAME_KEY, SCHEMA_VERSION_KEY, VersionedSchema
from trustflow.data.store.location import (
    StoreLocation,
    confine_key,
    endpoint_name,
    make_filesystem,
    parse_store_url,
    retry_policy,
)
from trustflow.data.store.manifest import MANIFEST_NAME, Manifest, PartInfo
from trustflow.data.store.retry import call_with_retry
from trustflow.errors import InputError, StageNotFound, StoreError
from trustflow.settings import Settings, load_settings

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=-]{0,199}$")
PARTS_DIR = "parts"
# rows per Parquet row group: a worker that reads a slice of a large part (tasks/ray_parts.PartSlice)
# reads only the groups holding it, so groups stay small (pyarrow's default is up to 1M rows)
ROW_GROUP_ROWS = 16384
RUNS_DIR = "runs"
T = TypeVar("T")


def _check_name(kind: str, value: str) -> str:
    if not _NAME_RE.match(value):
        raise StoreError(f"invalid {kind} {value!r}: use letters, digits and _ . = - (max 200)")
    return value


@dataclass(frozen=True)
class StageRef:
    """Names one stage of one run; plain data so it travels to Ray workers."""

    flow: str
    run_id: str
    stage: str

    def __post_init__(self) -> None:
        _check_name("flow name", self.flow)
        _check_name("run id", self.run_id)
        _check_name("stage name", self.stage)

    @property
    def relpath(self) -> str:
        return f"{RUNS_DIR}/{self.flow}/{self.run_id}/{self.stage}"

    def __str__(self) -> str:
        return f"{self.flow}/{self.run_id}/{self.stage}"


class ArtifactStore:
    """Parquet stages with manifests on a local directory or an S3 bucket prefix."""

    def __init__(self, url: str | None = None, settings: Settings | None = None) -> None:
        self.settings = settings or load_settings()
        self.url = url or self.settings.effective_store_url
        self.location: StoreLocation = parse_store_url(self.url)
        self.retry = retry_policy(self.settings)
        self.fs: pafs.FileSystem = make_filesystem(self.location, self.settings)
        if self.location.scheme == "file":
            self.fs.create_dir(self.location.root, recursive=True)

    # ---- retried I/O ---------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        """How errors name this store: the S3 endpoint and the store URL."""
        return f"{endpoint_name(self.settings)} ({self.url})"

    def stage_of(self, path: str) -> str | None:
        """``flow/run_id/stage`` when ``path`` lies inside a stage (for error messages)."""
        rel = path[len(self.location.root.rstrip("/")) + 1 :].split("/")
        return "/".join(rel[1:4]) if len(rel) >= 4 and rel[0] == RUNS_DIR else None

    def io(self, operation: str, fn: Callable[[], T], path: str | None = None, stage: object = None) -> T:
        """``fn()``; on S3 retried through outages (``retry.call_with_retry``), else called once.

        ``operation`` and the stage (given, or found from ``path``) name the failure if the
        store stays away longer than ``store.retry_seconds``.
        """
        if self.location.scheme != "s3":
            return fn()
        where = str(stage) if stage is not None else (self.stage_of(path) if path else None)
        return call_with_retry(fn, operation=operation, endpoint=self.endpoint, stage=where, policy=self.retry)

    # ---- paths -------------------------------------------------------------------------
    def path(self, *relparts: str) -> str:
        """The storage path of a key given as parts (``path("runs", flow, run_id)``).

        Every key is confined to the store (``confine_key``: no ``..``, absolute keys, empty
        segments, backslashes; on a local store no symlink out of the root either):
        ``InputError`` naming the key otherwise. Empty parts are skipped; no parts is the root.
        """
        key = "/".join(p for p in relparts if p)
        if not key:
            return self.location.root
        return self.confined(f"{self.location.root.rstrip('/')}/{confine_key(key)}", key)

    def confined(self, path: str, key: str | None = None) -> str:
        """``path`` if it lies inside the store; ``InputError`` naming ``key`` (or the path) otherwise.

        Checked again by every read and write, so a path built by hand (or joined from an
        untrusted key outside ``path``) cannot address anything outside the store either.
        """
        root = self.location.root.rstrip("/")
        shown = key if key is not None else path
        if path == root:
            return path
        if not path.startswith(root + "/"):
            raise InputError(f"store key {shown!r}: outside the store {self.url}")
        confine_key(path[len(root) + 1 :])
        if self.location.scheme == "file":
            real_root = os.path.realpath(root)
            real = os.path.realpath(path)  # follows every symlink on the way, existing or not
            if real != real_root and not real.startswith(real_root.rstrip("/") + "/"):
                raise InputError(f"store key {shown!r}: resolves through a symlink to {real}, outside the store")
        return path

    def stage_uri(self, ref: StageRef) -> str:
        return f"{self.url}/{ref.relpath}"

    # ---- low-level atomic file I/O ----------------------------------------------------
    def _exists(self, path: str) -> bool:
        info = self.io(f"lookup of {path.rsplit('/', 1)[-1]}", lambda: self.fs.get_file_info(path), path)
        return info.type == pafs.FileType.File

    def write_bytes_atomic(self, path: str, data: bytes) -> None:
        """Whole-file write that is never observed half done."""
        self.write_atomic(path, lambda out: out.write(data))

    def write_atomic(self, path: str, produce: Callable[[Any], object]) -> None:
        """Write a file through ``produce(output_stream)``; it appears only when complete.

        Local: streamed to a hidden temp name, then renamed (a failure deletes the temp).
        S3: encoded into memory first and uploaded whole — closing a pyarrow S3 stream
        completes the upload even after ``produce`` failed, which would publish a torn file.
        The upload is retried through outages (``io``); a retry re-sends the same bytes to the
        same key, so the object is published once, whole.
        """
        self.confined(path)
        parent = path.rsplit("/", 1)[0]
        if self.location.scheme == "file":
            self.fs.create_dir(parent, recursive=True)
            tmp = f"{parent}/.tmp-{uuid.uuid4().hex}"
            try:
                with self.fs.open_output_stream(tmp) as out:
                    produce(out)
                self.fs.move(tmp, path)
            except BaseException:
                if self._exists(tmp):
                    self.fs.delete_file(tmp)
                raise
        else:
            sink = pa.BufferOutputStream()
            produce(sink)
            payload = sink.getvalue()

            def upload() -> None:
                with self.fs.open_output_stream(path) as out:
                    out.write(payload)

            self.io(f"write of {path.rsplit('/', 1)[-1]}", upload, path)

    def read_bytes(self, path: str) -> bytes:
        self.confined(path)

        def read() -> bytes:
            with self.fs.open_input_stream(path) as src:
                return src.read()

        return self.io(f"read of {path.rsplit('/', 1)[-1]}", read, path)

    # ---- manifests ---------------------------------------------------------------------
    def manifest(self, ref: StageRef) -> Manifest | None:
        path = self.path(ref.relpath, MANIFEST_NAME)
        try:
            raw = self.read_bytes(path)
        except FileNotFoundError:
            return None
        try:
            return Manifest.model_validate_json(raw)
        except ValueError as exc:
            raise StoreError(f"{self.stage_uri(ref)}/{MANIFEST_NAME}: unreadable manifest ({exc})") from None

    def require_manifest(self, ref: StageRef) -> Manifest:
        found = self.manifest(ref)
        if found is None:
            raise StageNotFound(f"stage {ref} has no manifest in {self.url} (never written, or not finished)")
        return found

    def is_complete(self, ref: StageRef) -> bool:
        return self.manifest(ref) is not None

    # ---- writing -----------------------------------------------------------------------
    def writer(self, ref: StageRef, schema: VersionedSchema, key_columns: Iterable[str]) -> StageWriter:
        return StageWriter(self, ref, schema, list(key_columns))

    def write_stage(
        self,
        ref: StageRef,
        schema: VersionedSchema,
        table: pa.Table,
        key_columns: Iterable[str],
        attrs: dict[str, Any] | None = None,
    ) -> Manifest:
        """Convenience: write the missing rows of ``table`` as one part and commit."""
        w = self.writer(ref, schema, key_columns)
        todo = w.missing(table)
        if todo.num_rows:
            w.write_part(todo)
        return w.commit(attrs)

    # ---- reading -----------------------------------------------------------------------
    def dataset(self, ref: StageRef) -> pads.Dataset:
        manifest = self.require_manifest(ref)
        paths = [self.path(ref.relpath, PARTS_DIR, p.name) for p in manifest.parts]
        if not paths:
            return _empty_dataset(manifest, ref)
        return self.io(
            "open of the parts", lambda: pads.dataset(paths, filesystem=self.fs, format="parquet"), stage=ref
        )

    def read_table(self, ref: StageRef, columns: list[str] | None = None, filter: Any = None) -> pa.Table:
        dataset = self.dataset(ref)
        return self.io("read of the parts", lambda: dataset.to_table(columns=columns, filter=filter), stage=ref)

    def iter_parts(self, ref: StageRef, columns: list[str] | None = None, filter: Any = None) -> Iterator[pa.Table]:
        """A committed stage one part at a time (``columns``, rows passing ``filter``): for
        reductions over stages too large for the driver. Read file by file, not through one
        dataset: a dataset scan over thousands of parts kept ~85 KB per part in this process
        (170 MB at 2,000 parts), a part-by-part read stays flat."""
        manifest = self.require_manifest(ref)
        for part in manifest.parts:
            path = self.path(ref.relpath, PARTS_DIR, part.name)
            yield self.io(
                f"read of {part.name}",
                functools.partial(pq.read_table, path, columns=columns, filters=filter, filesystem=self.fs),
                stage=ref,
            )

    # ---- listing -----------------------------------------------------------------------
    def _list_dirs(self, path: str) -> list[str]:
        try:
            infos = self.io(
                "listing", lambda: self.fs.get_file_info(pafs.FileSelector(path, allow_not_found=True)), path
            )
        except FileNotFoundError:
            return []
        return sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory)

    def list_stages(self, flow: str | None = None, run_id: str | None = None) -> list[tuple[StageRef, Manifest]]:
        """Complete stages (those with a manifest), optionally for one flow and/or run."""
        out: list[tuple[StageRef, Manifest]] = []
        flows = [flow] if flow else self._list_dirs(self.path(RUNS_DIR))
        for f in flows:
            runs = [run_id] if run_id else self._list_dirs(self.path(RUNS_DIR, f))
            for r in runs:
                for s in self._list_dirs(self.path(RUNS_DIR, f, r)):
                    try:
                        ref = StageRef(f, r, s)
                    except StoreError:
                        continue
                    m = self.manifest(ref)
                    if m is not None:
                        out.append((ref, m))
        return out

    def find_runs(self, run_id: str) -> list[tuple[str, str]]:
        """(flow, run_id) pairs matching ``run_id`` or ``flow/run_id``."""
        if "/" in run_id:
            flow, rid = run_id.split("/", 1)
            return [(flow, rid)] if self._list_dirs(self.path(RUNS_DIR, flow, rid)) else []
        return [
            (f, run_id) for f in self._list_dirs(self.path(RUNS_DIR)) if self._list_dirs(self.path(RUNS_DIR, f, run_id))
        ]


def _empty_dataset(manifest: Manifest, ref: StageRef) -> pads.Dataset:
    """A stage committed with zero rows still has a schema: recover it from the manifest."""
    schema_json = manifest.attrs.get("_arrow_schema")
    if schema_json is None:
        raise StoreError(f"stage {ref} is empty and records no schema")
    schema = pa.ipc.read_schema(pa.py_buffer(bytes.fromhex(schema_json)))
    return pads.dataset(schema.empty_table())


TEST_GATE_ENV = "TRUSTFLOW_TEST_PART_GATE"
TEST_GATE_STAGE_ENV = "TRUSTFLOW_TEST_PART_GATE_STAGE"


def _test_gate(ref: StageRef, name: str) -> None:
    """Fault-injection hook for the integration tests; a no-op unless ``TRUSTFLOW_TEST_PART_GATE``.

    With ``TRUSTFLOW_TEST_PART_GATE=DIR`` (and optionally ``TRUSTFLOW_TEST_PART_GATE_STAGE``
    = a stage name), each part write first creates ``DIR/waiting-<part>`` and then waits
    until ``DIR/open`` exists, so a test can kill or restart the store exactly while parts
    are being written (deterministic, unlike sleeps). Inherited by local Ray workers.
    """
    gate = os.environ.get(TEST_GATE_ENV)
    only = os.environ.get(TEST_GATE_STAGE_ENV)
    if not gate or (only and only != ref.stage):
        return
    import pathlib
    import time

    folder = pathlib.Path(gate)
    (folder / f"waiting-{name}").touch()
    deadline = time.monotonic() + 300
    while not (folder / "open").exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def _distinct_rows(keys: pa.Table) -> int:
    """How many distinct key rows ``keys`` holds. One key column (the common case) goes through
    ``pc.unique``, a single hash pass with no Acero plan: about 40 % less time than ``group_by``
    on a million 32-character ids, which was most of ``commit``. Nulls count as one value in
    both paths, as a key column's null would in a join."""
    if keys.num_columns == 1:
        return len(pc.unique(keys.column(0)))
    return keys.group_by(keys.column_names).aggregate([]).num_rows


def _key_digest(keys: pa.Table) -> pa.Array | np.ndarray:
    """What ``commit`` keeps of one part's keys for its uniqueness check: a one-column key as
    is (``pc.unique`` over it is fast), several columns as one 64-bit hash per row — a
    judgements stage's three string columns are ~60 bytes a row, 260 MB at 4.4M rows in the
    driver, the hashes 8 bytes (hashed in Python: ~0.3 µs a row). Hashes are only a filter:
    if two rows share one, commit re-checks on the real keys."""
    if keys.num_columns == 1:
        return keys.column(0).combine_chunks()
    return np.fromiter(
        (hash(row) for row in zip(*(c.to_pylist() for c in keys.columns), strict=True)),
        np.int64,
        count=keys.num_rows,
    )


def _distinct_digests(digests: list[pa.Array | np.ndarray]) -> int:
    if digests and isinstance(digests[0], np.ndarray):
        return int(np.unique(np.concatenate(digests)).size)
    return len(pc.unique(pa.chunked_array(digests)))


class StageWriter:
    """Writes one keyed stage in parts and publishes it with a manifest.

    Cheap to rebuild anywhere (a Ray worker builds its own from the store URL and the ref),
    so parts are written in parallel by workers and committed once by the driver.
    """

    def __init__(self, store: ArtifactStore, ref: StageRef, schema: VersionedSchema, key_columns: list[str]) -> None:
        missing = [c for c in key_columns if c not in schema.names]
        if missing:
            raise StoreError(f"stage {ref}: key columns {missing} are not in schema {schema.name}")
        if not key_columns:
            raise StoreError(f"stage {ref}: a stage needs at least one key column")
        self.store = store
        self.ref = ref
        self.schema = schema
        self.key_columns = key_columns
        self._parts_dir = store.path(ref.relpath, PARTS_DIR)
        # key columns of the parts this writer wrote itself (name -> (bytes, keys)): commit
        # checks uniqueness on them without reading the parts back
        self._own_keys: dict[str, tuple[int, int, pa.Array | np.ndarray]] = {}

    # parts present on storage, committed or not (a killed writer's finished parts count)
    def part_files(self) -> list[pafs.FileInfo]:
        infos = self.store.io(
            "listing of parts/",
            lambda: self.store.fs.get_file_info(pafs.FileSelector(self._parts_dir, allow_not_found=True)),
            stage=self.ref,
        )
        return sorted(
            (
                i
                for i in infos
                if i.type == pafs.FileType.File and i.base_name.startswith("part-") and i.base_name.endswith(".parquet")
            ),
            key=lambda i: i.base_name,
        )

    def existing_keys(self) -> pa.Table:
        """Key columns of every row already written to this stage."""
        tables = [
            self.store.io(
                f"key read of {info.base_name}",
                functools.partial(pq.read_table, info.path, columns=self.key_columns, filesystem=self.store.fs),
                stage=self.ref,
            )
            for info in self.part_files()
        ]
        key_schema = pa.schema([self.schema.schema.field(c) for c in self.key_columns])
        if not tables:
            return key_schema.empty_table()
        return pa.concat_tables([t.cast(key_schema) for t in tables])

    def missing(self, table: pa.Table, existing: pa.Table | None = None) -> pa.Table:
        """Rows of ``table`` whose keys are not yet in the stage (anti-join); input order kept."""
        existing = self.existing_keys() if existing is None else existing
        if existing.num_rows == 0 or table.num_rows == 0:
            return table
        row = "__trustflow_row__"
        probe = table.select(self.key_columns).cast(existing.schema)
        probe = probe.append_column(row, pa.array(range(table.num_rows), pa.int64()))
        anti = probe.join(existing, keys=self.key_columns, join_type="left anti", use_threads=False)
        # join() does not promise order: take the surviving rows by their original index
        kept = anti[row].combine_chunks()
        return table.take(pc.take(kept, pc.sort_indices(kept)))

    def conform(self, table: pa.Table) -> pa.Table:
        """Select and cast ``table`` to the stage schema, naming any missing or bad column."""
        absent = [n for n in self.schema.names if n not in table.column_names]
        if absent:
            raise StoreError(f"stage {self.ref}: batch lacks columns {absent} of schema {self.schema.name}")
        try:
            return table.select(self.schema.names).cast(self.schema.with_metadata())
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            raise StoreError(f"stage {self.ref}: batch does not fit schema {self.schema.name}: {exc}") from None

    def write_part(self, table: pa.Table, part_id: str | None = None) -> PartInfo:
        """Write one part atomically; returns its name and size."""
        data = self.conform(table)
        name = f"part-{part_id or uuid.uuid4().hex}.parquet"
        _check_name("part name", name)
        path = f"{self._parts_dir}/{name}"
        _test_gate(self.ref, name)
        # streamed straight to storage: no in-memory copy of the encoded file
        self.store.write_atomic(
            path, lambda out: pq.write_table(data, out, compression="zstd", row_group_size=ROW_GROUP_ROWS)
        )
        info = self.store.io(f"size check of {name}", lambda: self.store.fs.get_file_info(path), stage=self.ref)
        self._own_keys[name] = (info.size or 0, data.num_rows, _key_digest(data.select(self.key_columns)))
        return PartInfo(name=name, rows=data.num_rows, bytes=info.size or 0)

    def commit(self, attrs: dict[str, Any] | None = None) -> Manifest:
        """Publish every part on storage under a new manifest, after checking keys are unique."""
        infos = self.part_files()
        parts: list[PartInfo] = []
        digests: list[pa.Array | np.ndarray] = []
        for info in infos:
            try:
                pf = self.store.io(
                    f"commit read of {info.base_name}",
                    functools.partial(pq.ParquetFile, info.path, filesystem=self.store.fs),
                    stage=self.ref,
                )
            except StoreError:
                raise
            except (pa.ArrowInvalid, OSError) as exc:
                raise StoreError(
                    f"stage {self.ref}: part {info.base_name} is unreadable ({exc}); delete it and re-run to rewrite it"
                ) from None
            meta = pf.schema_arrow.metadata or {}
            if (
                meta.get(SCHEMA_NAME_KEY, self.schema.name.encode()) != self.schema.name.encode()
                or meta.get(SCHEMA_VERSION_KEY, b"") != str(self.schema.version).encode()
            ):
                raise StoreError(
                    f"stage {self.ref}: part {info.base_name} has schema "
                    f"{meta.get(SCHEMA_NAME_KEY, b'?').decode()} v{meta.get(SCHEMA_VERSION_KEY, b'?').decode()}, "
                    f"expected {self.schema.name} v{self.schema.version}"
                )
            parts.append(PartInfo(name=info.base_name, rows=pf.metadata.num_rows, bytes=info.size or 0))
            size, rows, own = self._own_keys.get(info.base_name, (-1, -1, None))
            if own is not None and size == (info.size or 0) and rows == pf.metadata.num_rows:
                digests.append(own)  # written by this writer and unchanged since: no read-back
                continue
            keys = self.store.io(
                f"commit key read of {info.base_name}",
                functools.partial(pf.read, columns=self.key_columns),
                stage=self.ref,
            )
            digests.append(_key_digest(keys))
        total = sum(p.rows for p in parts)
        if digests and _distinct_digests(digests) != total:
            # a duplicate (or, for hashed keys, a 64-bit collision): count on the real keys
            keys = pa.concat_tables(
                self.store.io(
                    f"commit key re-read of {info.base_name}",
                    functools.partial(pq.read_table, info.path, columns=self.key_columns, filesystem=self.store.fs),
                    stage=self.ref,
                )
                for info in infos
            )
            distinct = _distinct_rows(keys)
            if distinct != keys.num_rows:
                raise StoreError(
                    f"stage {self.ref}: {keys.num_rows - distinct} duplicate keys {self.key_columns} across parts; "
                    "refusing to publish (was the stage written by two writers at once?)"
                )
        all_attrs = dict(attrs or {})
        all_attrs["_arrow_schema"] = self.schema.with_metadata().serialize().to_pybytes().hex()
        manifest = Manifest(
            flow=self.ref.flow,
            run_id=self.ref.run_id,
            stage=self.ref.stage,
            schema_name=self.schema.name,
            schema_version=self.schema.version,
            key_columns=self.key_columns,
            parts=parts,
            rows=sum(p.rows for p in parts),
            trustflow_version=trustflow.__version__,
            attrs=all_attrs,
        )
        self.store.write_bytes_atomic(self.store.path(self.ref.relpath, MANIFEST_NAME), manifest.to_json())
        return manifest


def manifest_summary(manifest: Manifest) -> dict[str, Any]:
    """The manifest without internal attrs, for printing and Prefect results."""
    data = json.loads(manifest.model_dump_json())
    data["attrs"] = {k: v for k, v in data["attrs"].items() if not k.startswith("_")}
    data.pop("parts", None)
    data["parts"] = len(manifest.parts)
    return data
