"""What every dataset kind shares: the ingester registry, dataset ids, the summary stage.

A dataset kind is one module in ``tasks/ingest/kinds/`` with one decorator
(``@INGESTERS.register("<kind>", options=XOptions)``); the registry imports that package
on first lookup, so nothing else lists the kinds.

An ingest run's id *is* the dataset id (``<kind>-<first 16 hex of the source fingerprint>``),
so its stages live at ``runs/ingest/<dataset_id>/<table>/``. The ``summary`` stage is
written last; its manifest marks the dataset complete, which is what makes re-ingesting
the same bytes a no-op and a half-finished ingest resumable.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from trustflow import names
from trustflow.data.schemas import DATASET_SUMMARY, VersionedSchema
from trustflow.data.store import ArtifactStore, Manifest, StageRef
from trustflow.errors import InputError
from trustflow.registry import Entry, Options, Registry
from trustflow.tasks.ingest.staging import staged
from trustflow.tasks.ray_parts import Chunk, write_parts_on_ray


class Ingester(Protocol):
    """Turns a local source into complete stages with the kind's validated options;
    returns {table name: manifest}."""

    def __call__(self, store: ArtifactStore, dataset_id: str, source: Path, options: Any) -> dict[str, Manifest]: ...


class ReadyIngester(Protocol):
    """An ingester with its options bound (what ``INGESTERS.create(spec)`` returns)."""

    def __call__(self, store: ArtifactStore, dataset_id: str, source: Path) -> dict[str, Manifest]: ...


def _bind(entry: Entry[Ingester], options: Options) -> ReadyIngester:
    return functools.partial(entry.obj, options=options)


# compatibility alias: flows/detector_eval.py and benchmarks/detector_inference.py import it
INGEST_FLOW = names.INGEST

INGESTERS: Registry[Ingester] = Registry("dataset kind", plugins="trustflow.tasks.ingest.kinds", factory=_bind)


def stage_ref(dataset_id: str, table: str) -> StageRef:
    """Where table ``table`` of a dataset lives: ``runs/ingest/<dataset_id>/<table>/``."""
    return StageRef(names.INGEST, dataset_id, table)


@dataclass(frozen=True)
class DatasetInfo:
    """What landed: the id, kind, source, row count per table and what was dropped."""

    dataset_id: str
    kind: str
    source: str
    fingerprint: str
    tables: dict[str, int]
    skipped: bool
    # entries dropped under on_invalid="drop": {"<domain>/<split>": {reason: count}}
    drops: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def dropped(self) -> int:
        """How many entries were dropped in all."""
        return sum(sum(by_reason.values()) for by_reason in self.drops.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset_id": self.dataset_id,
            "kind": self.kind,
            "source": self.source,
            "fingerprint": self.fingerprint,
            "tables": self.tables,
            "skipped": self.skipped,
            "dropped": self.dropped,
            "drops": self.drops,
        }


def require_rows(stats: dict[str, int], source: Path, what: str) -> None:
    """Refuse to commit a stage that would hold no rows: an ingest that finds nothing is an
    error naming the source, and neither the stage nor the dataset is marked complete.

    ``stats`` is what ``write_parts_on_ray`` returns; a chunk skipped because its part is on
    storage already (a resumed run) holds rows, since empty parts are never written."""
    if stats["rows_written"] + stats["rows_skipped"] == 0 and stats["chunks_skipped"] == 0:
        raise InputError(f"{source}: no {what} found; an empty dataset is not ingested")


def write_stage_on_ray(
    store: ArtifactStore,
    ref: StageRef,
    schema: VersionedSchema,
    key_columns: list[str],
    chunks: list[Chunk],
    builder: Callable[[Any], pa.Table],
    source: Path,
    what: str,
    attrs: dict[str, Any],
) -> Manifest:
    """The ingest shape every file-backed kind shares: build ``chunks`` into parts on Ray
    (a rerun skips the parts already written), refuse an empty result naming ``what`` was
    looked for in ``source``, then commit the stage with ``attrs`` in its manifest.

    When the running ingest stages its source (``ingest.stage_sources``), the builder reads
    the staged copy on each worker's node, never the driver's path (tasks/ingest/staging.py)."""
    stats = write_parts_on_ray(store, ref, schema, key_columns, chunks, staged(builder))
    require_rows(stats, source, what)
    return store.writer(ref, schema, key_columns).commit(attrs)


def dataset_id_for(kind: str, fingerprint: str) -> str:
    return f"{kind}-{fingerprint[:16]}"


def summary_ref(dataset_id: str) -> StageRef:
    return stage_ref(dataset_id, names.SUMMARY)


def existing_dataset(store: ArtifactStore, dataset_id: str) -> DatasetInfo | None:
    manifest = store.manifest(summary_ref(dataset_id))
    if manifest is None:
        return None
    rows = store.read_table(summary_ref(dataset_id)).to_pydict()
    return DatasetInfo(
        dataset_id=dataset_id,
        kind=str(manifest.attrs.get("kind")),
        source=str(manifest.attrs.get("source")),
        fingerprint=str(manifest.attrs.get("fingerprint")),
        tables=dict(zip(rows["table"], rows["rows"], strict=True)),
        skipped=True,
        drops=dict(manifest.attrs.get("drops") or {}),
    )


def write_summary(
    store: ArtifactStore, dataset_id: str, kind: str, source: str, fp: str, manifests: dict[str, Manifest]
) -> DatasetInfo:
    table = pa.table(
        {
            "table": list(manifests),
            "rows": [m.rows for m in manifests.values()],
            "schema_name": [m.schema_name for m in manifests.values()],
            "schema_version": [m.schema_version for m in manifests.values()],
        }
    )
    # a kind that drops entries records the same counts on each of its tables: take them once
    drops = next((dict(m.attrs["drops"]) for m in manifests.values() if m.attrs.get("drops")), {})
    attrs = {"kind": kind, "source": source, "fingerprint": fp, **({"drops": drops} if drops else {})}
    store.write_stage(summary_ref(dataset_id), DATASET_SUMMARY, table, ["table"], attrs)
    tables = {k: m.rows for k, m in manifests.items()}
    return DatasetInfo(dataset_id, kind, source, fp, tables, skipped=False, drops=drops)


def list_datasets(store: ArtifactStore) -> list[DatasetInfo]:
    found = []
    for ref, _ in store.list_stages(flow=names.INGEST):
        if ref.stage == names.SUMMARY:
            info = existing_dataset(store, ref.run_id)
            if info is not None:
                found.append(info)
    return found
