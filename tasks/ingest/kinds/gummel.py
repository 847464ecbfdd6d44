"""Ingest Gummel measurements of lateral BJTs (CSV or Parquet, one file or a folder) — issue 20.

Every file is validated by data/device/gummel.py (errors name file, row and column); rows land
in the ``gummel`` stage keyed by ``point_id`` so a re-ingest never duplicates a point.
Compliance-clipped points are kept, flagged, and counted in the manifest (``clipped``).

Why the driver writes one part (not Ray parts): a lab's Gummel files are small (hundreds of
points per sweep) and the monotonic-sweep check needs each file whole.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from trustflow import names
from trustflow.data.device.gummel import read_gummel
from trustflow.data.schemas import GUMMEL
from trustflow.data.store import ArtifactStore, Manifest
from trustflow.errors import InputError
from trustflow.registry import NoOptions
from trustflow.tasks.ingest.common import INGESTERS, stage_ref

GUMMEL_KEYS = ["point_id"]
SUFFIXES = (".csv", ".parquet")


def gummel_files(source: Path) -> list[Path]:
    if source.is_file():
        return [source]
    files = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    if not files:
        raise InputError(f"{source}: no .csv or .parquet Gummel files")
    return files


@INGESTERS.register("gummel")
def ingest_gummel(store: ArtifactStore, dataset_id: str, source: Path, options: NoOptions) -> dict[str, Manifest]:
    parts = [read_gummel(path) for path in gummel_files(source)]
    table = pa.concat_tables([p.table for p in parts])
    ids = table.column("point_id").to_pylist()
    if len(set(ids)) != len(ids):
        raise InputError(f"{source}: the same (device, T, V_CE/V_CB, V_sub, V_BE) point appears twice")
    writer = store.writer(stage_ref(dataset_id, names.GUMMEL), GUMMEL, GUMMEL_KEYS)
    todo = writer.missing(table)
    if todo.num_rows:
        writer.write_part(todo, "gummel")
    devices = sorted(set(table.column("device_id").to_pylist()))
    temps = sorted(set(table.column("temperature_k").to_pylist()))
    manifest = writer.commit(
        {"files": len(parts), "devices": devices, "temperatures_k": temps, "clipped": sum(p.clipped for p in parts)}
    )
    return {names.GUMMEL: manifest}
