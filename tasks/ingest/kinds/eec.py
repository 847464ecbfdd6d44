"""Ingest the EEC-style counterfactual template set (``generated:eec``, data/fairness/templates.py)."""

from __future__ import annotations

from pathlib import Path

from trustflow.data.fairness.texts import read_table
from trustflow.data.store import ArtifactStore, Manifest
from trustflow.registry import NoOptions
from trustflow.tasks.ingest.common import INGESTERS
from trustflow.tasks.ingest.kinds._fairness import write_texts


@INGESTERS.register("eec")
def ingest_eec(store: ArtifactStore, dataset_id: str, source: Path, options: NoOptions) -> dict[str, Manifest]:
    rows = read_table(source, "text", "label", "attribute", "split", "pair_id", "eec")
    return write_texts(store, dataset_id, rows, None, {"pairs": len({r.pair_id for r in rows})})
