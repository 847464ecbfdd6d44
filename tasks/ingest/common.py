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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from trustflow import names
from trustflow.data.schemas import DATASET_SUMMARY
from trustflow.data.store import ArtifactStore, Manifest, StageRef
from trustflow.registry import Entry, Options, Registry


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
    """What landed: the id, kind, source and row count per table."""

    dataset_id: str
    kind: str
    source: str
    fingerprint: str
    tables: dict[str, int]
    skipped: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset_id": self.dataset_id,
            "kind": self.kind,
            "source": self.source,
            "fingerprint": self.fingerprint,
            "tables": self.tables,
            "skipped": self.skipped,
        }


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
    attrs = {"kind": kind, "source": source, "fingerprint": fp}
    store.write_stage(summary_ref(dataset_id), DATASET_SUMMARY, table, ["table"], attrs)
    return DatasetInfo(dataset_id, kind, source, fp, {k: m.rows for k, m in manifests.items()}, skipped=False)


def list_datasets(store: ArtifactStore) -> list[DatasetInfo]:
    found = []
    for ref, _ in store.list_stages(flow=names.INGEST):
        if ref.stage == names.SUMMARY:
            info = existing_dataset(store, ref.run_id)
            if info is not None:
                found.append(info)
    return found
