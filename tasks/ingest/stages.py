"""Prefect tasks of the ingestion flow. Each one is a stage Prefect can see; the heavy one
(``ingest_tables``) launches a single Ray job that fans out over files or image chunks.

Tasks use ``NO_CACHE``: idempotence comes from the store's manifests and keys, not from
Prefect's input-hash cache (which would report success for data that was since deleted).
"""

from __future__ import annotations

import hashlib
import string
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from trustflow.data.sources import fingerprint, resolve_source
from trustflow.infra.ray_runtime import ensure_ray
from trustflow.tasks.ingest.common import INGESTERS, dataset_id_for, existing_dataset, stage_ref, write_summary
from trustflow.tasks.ingest.staging import StagingPlan, source_staging
from trustflow.tasks.ray_parts import StoreSpec


@task(name="resolve-source", cache_policy=NO_CACHE)
def resolve_source_task(source: str, spec: StoreSpec) -> str:
    return str(resolve_source(source, spec.open().settings))


@task(name="fingerprint-source", cache_policy=NO_CACHE)
def fingerprint_task(local_path: str) -> str:
    return fingerprint(Path(local_path))


@task(name="lookup-dataset", cache_policy=NO_CACHE)
def lookup_dataset_task(spec: StoreSpec, dataset_id: str) -> dict[str, Any] | None:
    info = existing_dataset(spec.open(), dataset_id)
    return info.as_dict() if info else None


@task(name="ingest-tables", task_run_name="ingest-{kind}-tables", cache_policy=NO_CACHE)
def ingest_tables_task(
    spec: StoreSpec,
    kind: str,
    dataset_id: str,
    local_path: str,
    options: dict[str, Any] | None = None,
    fp: str | None = None,
    stage_sources: str | None = None,
) -> dict[str, int]:
    """Run the kind's ingester with ``options`` (its options model checks them: a kind that
    takes none rejects any, naming the kind and the option).

    ``stage_sources`` (default: the ``ingest.stage_sources`` setting) decides whether its
    Ray builders read the source from a staged copy in the store (``fp`` names it) instead
    of the driver's path; the upload happens at the kind's first Ray fan-out, if any."""
    ingest = INGESTERS.create(kind, **(options or {}))
    store = spec.open()
    ensure_ray(store.settings)
    mode = stage_sources or store.settings.ingest.stage_sources
    plan = StagingPlan(store, Path(local_path), fp or fingerprint(Path(local_path)), mode)
    with source_staging(plan):
        manifests = ingest(store, dataset_id, Path(local_path))
    return {name: m.rows for name, m in manifests.items()}


@task(name="write-summary", cache_policy=NO_CACHE)
def write_summary_task(
    spec: StoreSpec, dataset_id: str, kind: str, source: str, fp: str, tables: list[str]
) -> dict[str, Any]:
    store = spec.open()
    manifests = {name: store.require_manifest(stage_ref(dataset_id, name)) for name in tables}
    return write_summary(store, dataset_id, kind, source, fp, manifests).as_dict()


def kind_spec(kind: str) -> tuple[str, str]:
    """(kind name, canonical spec) of a kind spec such as ``espeak?seed=1&per_sentence=2``; its
    options are checked here (a bad one names the kind and the field before anything runs).
    Options change what is stored, so a spec with any is part of the dataset id (the canonical
    spec leaves defaults out: ``espeak?seed=0`` is ``espeak``)."""
    from trustflow.registry import parse_spec

    parsed = parse_spec(kind, "dataset kind")
    INGESTERS.get(parsed.name)  # unknown kinds fail here with the list of known ones
    _, options = INGESTERS.resolve(parsed)
    return parsed.name, INGESTERS.spec(parsed.name, options)


def dataset_id_from(kind: str, fp: str) -> str:
    """The dataset id for a fingerprint, plus whatever the flow appended that changes what is
    stored (``"<sha256>|drop"`` for ``on_invalid=drop``). The id keeps only 16 hex digits, so a
    suffix is hashed in: appended as is it was cut off, and a strict ingest of a bad source
    found the earlier lenient one and returned it as "unchanged"."""
    INGESTERS.get(kind)  # unknown kinds fail here with the list of known ones
    plain = all(c in string.hexdigits for c in fp)
    return dataset_id_for(kind, fp if plain else hashlib.sha256(fp.encode()).hexdigest())
