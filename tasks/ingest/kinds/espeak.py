"""Ingest espeak-ng speech: the source is a text file of sentences (one a line), each spoken by
``per_sentence`` seeded draws of (voice, rate, pitch); see data/speech/utterances.py."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from trustflow.data.speech.utterances import TRAIN_VOICES, SynthConfig, synthesise
from trustflow.data.store import ArtifactStore, Manifest
from trustflow.errors import InputError
from trustflow.registry import Options
from trustflow.tasks.ingest.common import INGESTERS
from trustflow.tasks.ingest.kinds._speech import write_utterances


class EspeakOptions(Options):
    voices: str = ",".join(TRAIN_VOICES)  # comma-separated espeak-ng voices (voice+variant)
    rates: str = "140,170,200"
    pitches: str = "30,50,70"
    per_sentence: int = Field(default=1, ge=1, le=50)
    domain: str = "espeak"
    seed: int = 0


def _ints(text: str, field: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise InputError(f"espeak option {field}={text!r}: expected comma-separated integers") from None


@INGESTERS.register("espeak", options=EspeakOptions)
def ingest_espeak(store: ArtifactStore, dataset_id: str, source: Path, options: EspeakOptions) -> dict[str, Manifest]:
    sentences = [s.strip() for s in source.read_text(encoding="utf-8").splitlines() if s.strip()]
    if not sentences:
        raise InputError(f"{source}: no sentences (one a line)")
    config = SynthConfig(
        sentences=len(sentences),
        voices=tuple(v.strip() for v in options.voices.split(",") if v.strip()),
        rates=_ints(options.rates, "rates"),
        pitches=_ints(options.pitches, "pitches"),
        per_sentence=options.per_sentence,
        domain=options.domain,
        seed=options.seed,
    )
    rows = synthesise(config, sentences)
    return write_utterances(store, dataset_id, rows, {"voices": list(config.voices), "seed": options.seed})
