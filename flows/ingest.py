"""Ingestion flow: a source (path or URL) becomes Parquet datasets in the artifact store."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from trustflow import names
from trustflow.data.store import ArtifactStore
from trustflow.errors import ConfigError
from trustflow.settings import StageSources, load_settings
from trustflow.tasks.ingest.stages import (
    dataset_id_from,
    fingerprint_task,
    ingest_tables_task,
    kind_spec,
    lookup_dataset_task,
    resolve_source_task,
    write_summary_task,
)
from trustflow.tasks.ray_parts import StoreSpec


@flow(name=names.INGEST, flow_run_name="ingest-{kind}", log_prints=False)
def ingest_flow(
    source: str,
    kind: str,
    store_url: str | None = None,
    on_invalid: str = "error",
    stage_sources: StageSources | None = None,
) -> dict[str, Any]:
    """Ingest ``source`` as a ``kind`` dataset; a no-op when the same bytes were ingested before.

    ``on_invalid`` (COCO sets): ``error`` stops at the first bad entry; ``drop`` drops bad
    entries, counts them by reason and records the counts in the images manifest. The policy
    is part of the dataset id, so the two never share one.

    ``stage_sources`` (default: the ``ingest.stage_sources`` setting): whether Ray workers
    read the source from a copy staged in the store (a cluster) or the driver's path."""
    settings = load_settings()
    store = ArtifactStore(store_url or settings.effective_store_url, settings)
    spec = StoreSpec.of(store)
    local_path = resolve_source_task(source, spec)
    fp = fingerprint_task(local_path)
    if on_invalid not in ("error", "drop"):
        raise ConfigError(f"on_invalid must be 'error' or 'drop', got {on_invalid!r}")
    options = {"on_invalid": on_invalid} if on_invalid != "error" else {}
    name, canonical = kind_spec(kind)  # ``espeak?seed=1``: the kind's options are part of the id
    dataset_id = dataset_id_from(
        name, fp + ("|drop" if options else "") + ("" if canonical == name else f"|{canonical}")
    )
    already = lookup_dataset_task(spec, dataset_id)
    if already is not None:
        _publish(already, store)
        return already
    tables = ingest_tables_task(spec, canonical, dataset_id, local_path, options, fp, stage_sources)
    info = write_summary_task(spec, dataset_id, name, source, fp, list(tables))
    _publish(info, store)
    return info


def _publish(info: dict[str, Any], store: ArtifactStore) -> None:
    """Prefect UI artifacts: a table of row counts and a summary with store locations."""
    key = f"dataset-{info['dataset_id']}".lower()
    create_table_artifact(
        key=key,
        table=[{"table": name, "rows": rows} for name, rows in info["tables"].items()],
        description=f"Dataset {info['dataset_id']} ({info['kind']})",
    )
    lines = [
        f"# Dataset `{info['dataset_id']}`",
        "",
        f"- kind: {info['kind']}",
        f"- source: `{info['source']}`",
        f"- status: {'already ingested (no-op)' if info['skipped'] else 'ingested'}",
        "",
        "| table | rows | location |",
        "|---|---:|---|",
    ]
    for name, rows in info["tables"].items():
        lines.append(f"| {name} | {rows} | `{store.url}/runs/{names.INGEST}/{info['dataset_id']}/{name}/` |")
    create_markdown_artifact(key=f"{key}-summary", markdown="\n".join(lines))
