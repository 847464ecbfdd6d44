"""Ingestion: a source (path or URL) becomes Parquet datasets under ``runs/ingest/<dataset_id>/``.

- ``common``: the ``INGESTERS`` registry, dataset ids and the summary stage (re-exported here);
- ``kinds/``: one module per dataset kind (discovered by the registry);
- ``stages``: the Prefect tasks the ingestion flow composes;
- ``report``: the dataset's section of ``trustflow report``.
"""

from __future__ import annotations

from trustflow.tasks.ingest.common import (
    INGEST_FLOW,
    INGESTERS,
    DatasetInfo,
    Ingester,
    dataset_id_for,
    existing_dataset,
    list_datasets,
    stage_ref,
    summary_ref,
    write_summary,
)

__all__ = [
    "INGEST_FLOW",
    "INGESTERS",
    "DatasetInfo",
    "Ingester",
    "dataset_id_for",
    "existing_dataset",
    "list_datasets",
    "stage_ref",
    "summary_ref",
    "write_summary",
]
