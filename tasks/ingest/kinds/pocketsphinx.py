"""Ingest Debian pocketsphinx-testdata's recorded utterances (source: its ``test/data`` folder,
/usr/share/pocketsphinx/test/data) as the ``real`` speech domain."""

from __future__ import annotations

from pathlib import Path

from trustflow.data.speech.utterances import read_pocketsphinx
from trustflow.data.store import ArtifactStore, Manifest
from trustflow.registry import NoOptions
from trustflow.tasks.ingest.common import INGESTERS
from trustflow.tasks.ingest.kinds._speech import write_utterances


@INGESTERS.register("pocketsphinx")
def ingest_pocketsphinx(store: ArtifactStore, dataset_id: str, source: Path, options: NoOptions) -> dict[str, Manifest]:
    return write_utterances(store, dataset_id, read_pocketsphinx(source), {"source": "pocketsphinx-testdata"})
