"""Ingest a LibriSpeech-style folder (``*.trans.txt`` + ``<id>.flac|.wav``) as speech utterances."""

from __future__ import annotations

from pathlib import Path

from trustflow.data.speech.utterances import read_speech_folder
from trustflow.data.store import ArtifactStore, Manifest
from trustflow.registry import Options
from trustflow.tasks.ingest.common import INGESTERS
from trustflow.tasks.ingest.kinds._speech import write_utterances


class SpeechFolderOptions(Options):
    domain: str | None = None  # default: the folder's name


@INGESTERS.register("speech-folder", options=SpeechFolderOptions)
def ingest_speech_folder(
    store: ArtifactStore, dataset_id: str, source: Path, options: SpeechFolderOptions
) -> dict[str, Manifest]:
    return write_utterances(store, dataset_id, read_speech_folder(source, options.domain), {"layout": "librispeech"})
