"""What the fairness dataset kinds share: writing ``fairness_texts`` rows into the ``texts`` stage.

Why the driver writes one part (like the ``labels`` kind) and not Ray parts: the sets are
small (RedditBias 11k rows, the BUG slice ~30k, templates 2.6k) and the class list must be
known before any ``label_id`` is written, which needs one pass over every row.
"""

from __future__ import annotations

from typing import Any

from trustflow import names
from trustflow.data.fairness.texts import FairText, texts_table
from trustflow.data.schemas import FAIRNESS_TEXTS
from trustflow.data.store import ArtifactStore, Manifest
from trustflow.errors import InputError
from trustflow.tasks.ingest.common import stage_ref

TEXT_KEYS = ["text_id"]


def write_texts(
    store: ArtifactStore, dataset_id: str, rows: list[FairText], classes: list[str] | None, attrs: dict[str, Any]
) -> dict[str, Manifest]:
    """Write ``rows`` (classes: the given order, else sorted) and commit the ``texts`` stage."""
    if not rows:
        raise InputError(f"dataset {dataset_id}: no texts found; an empty dataset is not ingested")
    classes = classes or sorted({r.label for r in rows})
    if len(classes) < 2:
        raise InputError(f"dataset {dataset_id}: one label ({classes[0]!r}); a classifier needs two or more")
    ref = stage_ref(dataset_id, names.TEXTS)
    writer = store.writer(ref, FAIRNESS_TEXTS, TEXT_KEYS)
    todo = writer.missing(texts_table(rows, classes))
    if todo.num_rows:
        writer.write_part(todo, "texts")
    groups = sorted({r.attribute for r in rows})
    manifest = writer.commit({"classes": classes, "groups": groups, **attrs})
    return {names.TEXTS: manifest}
