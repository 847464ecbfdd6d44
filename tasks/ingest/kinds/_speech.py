"""What the speech dataset kinds share: writing ``speech_utterances`` rows into the ``utterances`` stage.

Why the driver writes one part and not Ray parts: the sets are small (espeak sets of a few
hundred utterances, 11 pocketsphinx recordings, a LibriSpeech dev folder of ~2.7k) and the
phonemizer runs once over all distinct words (one espeak-ng call), which needs one pass.
Re-runs write only the ``utt_id``s the stage lacks (keyed writer), so nothing is duplicated.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from trustflow import names
from trustflow.data.schemas import SPEECH_UTTERANCES
from trustflow.data.speech.utterances import Utterance, utterances_table
from trustflow.data.store import ArtifactStore, Manifest
from trustflow.errors import InputError
from trustflow.tasks.ingest.common import stage_ref

UTT_KEYS = ["utt_id"]


def write_utterances(
    store: ArtifactStore, dataset_id: str, rows: list[Utterance], attrs: dict[str, Any]
) -> dict[str, Manifest]:
    if not rows:
        raise InputError(f"dataset {dataset_id}: no utterances found; an empty dataset is not ingested")
    seen: dict[str, Utterance] = {}
    for r in rows:
        seen.setdefault(r.utt_id, r)
    ref = stage_ref(dataset_id, names.UTTERANCES)
    writer = store.writer(ref, SPEECH_UTTERANCES, UTT_KEYS)
    todo = writer.missing(utterances_table(list(seen.values())))
    if todo.num_rows:
        writer.write_part(todo, "utterances")
    domains = Counter(r.domain for r in seen.values())
    hours = sum(r.seconds for r in seen.values()) / 3600
    manifest = writer.commit({"domains": dict(sorted(domains.items())), "hours": round(hours, 4), **attrs})
    return {names.UTTERANCES: manifest}
