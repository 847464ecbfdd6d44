"""Ingest a user's CSV/JSONL/Parquet of texts with a task label and a protected attribute.

``fairness-texts?text=comment&label=toxic&attribute=identity`` maps the columns; ``split``
(values train/test) and ``pair`` (rows that differ only in the group term) are optional.
A folder ingests every such file in it, in name order.
"""

from __future__ import annotations

from pathlib import Path

from trustflow.data.fairness.texts import FairText, dedupe, read_table
from trustflow.data.store import ArtifactStore, Manifest
from trustflow.errors import InputError
from trustflow.registry import Options
from trustflow.tasks.ingest.common import INGESTERS
from trustflow.tasks.ingest.kinds._fairness import write_texts

SUFFIXES = (".csv", ".jsonl", ".parquet")


class FairnessTextsOptions(Options):
    text: str = "text"
    label: str = "label"
    attribute: str = "attribute"
    split: str | None = None
    pair: str | None = None
    source: str | None = None  # default: the file stem


def table_files(source: Path) -> list[Path]:
    if source.is_file():
        return [source]
    files = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    if not files:
        raise InputError(f"{source}: no .csv, .jsonl or .parquet files")
    return files


@INGESTERS.register(
    "fairness-texts", options=FairnessTextsOptions, example="fairness-texts?text=comment&label=toxic&attribute=group"
)
def ingest_fairness_texts(
    store: ArtifactStore, dataset_id: str, source: Path, options: FairnessTextsOptions
) -> dict[str, Manifest]:
    rows: list[FairText] = []
    files = table_files(source)
    for path in files:
        rows += read_table(
            path, options.text, options.label, options.attribute, options.split, options.pair, options.source
        )
    return write_texts(store, dataset_id, dedupe(rows), None, {"files": [p.name for p in files]})
