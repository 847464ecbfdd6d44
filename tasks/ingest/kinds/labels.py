"""Ingest labelled (prompt, response) pairs — human or LLM-written — into the ``labels`` stage.

The source is a CSV, JSONL or Parquet file, or a folder of them (``pyrit:harm`` /
``pyrit:refusal`` name PyRIT's human-labelled scorer-evaluation folders inside the
installed ``pyrit`` package, see data/sources.py). With the default options PyRIT's
layouts are recognised by their columns; otherwise the options map the columns
(``labels?prompt=q&response=a&label=r1,r2``: several label columns are several annotators).
The unsafe threshold for graded scores and the meaning of refusal-scorer labels are
documented in ``data/seval/labels.py``.

Why not Ray parts like the other kinds: label files are small (kilobytes to a few MB) and
rows repeated across files (a ``mini_`` subset of a set, a multi-annotator copy) must be
kept once, which needs one pass over every file; the driver reads them and writes one part.
In a folder, files without a prompt/response column (e.g. PyRIT's ``*_metrics.jsonl``)
are skipped and listed in the manifest (``skipped``), never silently.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import pyarrow as pa
from pydantic import Field

from trustflow import names
from trustflow.data.schemas import LABELS
from trustflow.data.seval.labels import DEFAULT_COLUMNS, RECORD_FIELDS, LabelColumns, LabelRecord, read_label_records
from trustflow.data.store import ArtifactStore, Manifest
from trustflow.errors import InputError
from trustflow.registry import Options
from trustflow.tasks.ingest.common import INGESTERS, stage_ref

log = logging.getLogger(__name__)
LABEL_KEYS = ["label_id"]
SUFFIXES = (".csv", ".jsonl", ".parquet")


class LabelsOptions(Options):
    """Column mapping (defaults: the project's own layout; PyRIT's is recognised by itself)."""

    prompt: str = DEFAULT_COLUMNS.prompt
    response: str = DEFAULT_COLUMNS.response
    label: str = DEFAULT_COLUMNS.label  # comma-separated: several annotators
    lang: str = DEFAULT_COLUMNS.lang
    category: str = DEFAULT_COLUMNS.category
    agreement: str = DEFAULT_COLUMNS.agreement
    source: str | None = None  # default: pyrit-harm:<category>, pyrit-refusal or the file stem
    origin: Literal["human", "llm-written"] = "human"
    threshold: float = Field(0.5, gt=0.0, le=1.0)  # graded score ≥ threshold → unsafe


def label_files(source: Path) -> list[Path]:
    if source.is_file():
        return [source]
    files = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    if not files:
        raise InputError(f"{source}: no .csv, .jsonl or .parquet label files")
    return files


def records_table(records: list[LabelRecord]) -> pa.Table:
    return pa.Table.from_pylist([r.as_dict() for r in records], schema=LABELS.schema).select(RECORD_FIELDS)


@INGESTERS.register("labels", options=LabelsOptions, example="labels?prompt=objective&response=assistant_response")
def ingest_labels(store: ArtifactStore, dataset_id: str, source: Path, options: LabelsOptions) -> dict[str, Manifest]:
    mapping = options.model_dump(include={"prompt", "response", "label", "lang", "category", "agreement"})
    cols = LabelColumns(**mapping)
    auto = cols == DEFAULT_COLUMNS
    files = label_files(source)
    records: list[LabelRecord] = []
    seen: set[str] = set()
    skipped: list[str] = []
    for path in files:
        try:
            found = read_label_records(path, None if auto else cols, options.source, options.origin, options.threshold)
        except InputError as exc:
            if len(files) == 1 or "no prompt column" not in str(exc) and "no response column" not in str(exc):
                raise
            log.warning("skipping %s: %s", path, exc)
            skipped.append(path.relative_to(source).as_posix())
            continue
        for r in found:
            if r.label_id not in seen:
                seen.add(r.label_id)
                records.append(r)
    if not records:
        raise InputError(f"{source}: no labelled rows found")
    ref = stage_ref(dataset_id, names.LABELS)
    writer = store.writer(ref, LABELS, LABEL_KEYS)
    todo = writer.missing(records_table(records))
    if todo.num_rows:
        writer.write_part(todo, "labels")
    sources = sorted({r.source for r in records})
    manifest = writer.commit(
        {"files": len(files) - len(skipped), "skipped": skipped, "sources": sources, "threshold": options.threshold}
    )
    return {names.LABELS: manifest}
