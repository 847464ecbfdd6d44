"""Speech data: espeak-ng synthesis, pocketsphinx-testdata, LibriSpeech folders, validation, ingest."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from trustflow import names
from trustflow.data.speech.audio import read_audio, wav_bytes
from trustflow.data.speech.utterances import (
    SynthConfig,
    Utterance,
    make_sentences,
    read_pocketsphinx,
    read_speech_folder,
    synthesise,
    utterances_from_table,
    utterances_table,
    validate,
)
from trustflow.data.store import ArtifactStore
from trustflow.errors import InputError
from trustflow.tasks.ingest.common import INGESTERS


def _write_wav(path: Path, seconds: float = 0.5, rate: int = 16000) -> None:
    t = np.arange(int(seconds * rate)) / rate
    path.write_bytes(wav_bytes((0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), rate))


def test_espeak_synthesis_is_seeded_and_gives_16k_audio_with_phones() -> None:
    config = SynthConfig(sentences=2, voices=("en-us", "en-gb+f3"), seed=3)
    a, b = synthesise(config), synthesise(config)
    assert [r.utt_id for r in a] == [r.utt_id for r in b]
    assert np.array_equal(a[0].audio, b[0].audio)
    assert a[0].transcript == make_sentences(2, 3)[0]
    assert 0.5 < a[0].seconds < 6 and a[0].audio.dtype == np.float32
    assert a[0].phones.count("|") == len(a[0].transcript.split()) - 1
    assert a[0].speaker.split("@")[0] in config.voices


def test_pocketsphinx_testdata_has_eleven_transcribed_utterances() -> None:
    rows = read_pocketsphinx()
    assert len(rows) == 11 and {r.domain for r in rows} == {"real"}
    goforward = next(r for r in rows if r.source == "goforward")
    assert goforward.transcript == "go forward ten meters" and 1.0 < goforward.seconds < 10
    card = next(r for r in rows if r.source == "005")
    assert card.transcript == "eight of spades four of clubs seven of hearts"


def test_librispeech_folder_reads_wav_and_transcripts(tmp_path: Path) -> None:
    chapter = tmp_path / "dev" / "19" / "198"
    chapter.mkdir(parents=True)
    _write_wav(chapter / "19-198-0000.wav")
    _write_wav(chapter / "19-198-0001.wav", rate=8000)
    (chapter / "19-198.trans.txt").write_text("19-198-0000 HELLO WORLD\n19-198-0001 THE CAT\n")
    rows = read_speech_folder(tmp_path / "dev")
    assert [r.transcript for r in rows] == ["hello world", "the cat"]
    assert {r.domain for r in rows} == {"dev"} and {r.speaker for r in rows} == {"19"}
    assert len(rows[1].audio) == 8000  # 0.5 s resampled 8k -> 16k


def test_librispeech_folder_errors_name_the_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "a-1.trans.txt").write_text("a-1-0 HELLO\n")
    with pytest.raises(InputError, match=r"a-1.trans.txt:1: no a-1-0.flac or a-1-0.wav"):
        read_speech_folder(tmp_path)
    (tmp_path / "a-1.trans.txt").write_text("a-1-0\n")
    with pytest.raises(InputError, match=r"a-1.trans.txt:1: expected '<utterance-id> <transcript>'"):
        read_speech_folder(tmp_path)
    with pytest.raises(InputError, match="no \\*.trans.txt"):
        read_speech_folder(_empty(tmp_path))


def _empty(tmp_path: Path) -> Path:
    out = tmp_path / "empty"
    out.mkdir()
    return out


def test_bad_audio_and_rows_are_clear_errors(tmp_path: Path) -> None:
    bad = tmp_path / "x.wav"
    bad.write_bytes(b"not a wav at all")
    with pytest.raises(Exception, match=r"x.wav: not a PCM WAV file"):
        read_audio(bad)
    with wave.open(str(tmp_path / "y.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(16000)
        w.writeframes(b"\x80" * 100)
    with pytest.raises(Exception, match="8-bit WAV; only 16-bit PCM"):
        read_audio(tmp_path / "y.wav")
    nan = Utterance("u1", np.array([0.0, np.nan], dtype=np.float32), "a", ["ə"], "d", "s", "src")
    with pytest.raises(InputError, match="utterance u1 \\(src\\): audio holds NaN"):
        validate([nan])
    empty = Utterance("u2", np.zeros(10, dtype=np.float32), "", [], "d", "s", "src")
    with pytest.raises(InputError, match="u2 .*empty transcript"):
        validate([empty])


def test_table_round_trip_keeps_audio_to_16_bit_precision() -> None:
    audio = (np.linspace(-0.5, 0.5, 1600)).astype(np.float32)
    row = Utterance("u", audio, "a cat", ["ə", "|", "k", "æ", "t"], "clean", "spk", "src")
    back = utterances_from_table(utterances_table([row]))[0]
    assert back.phones == row.phones and back.transcript == "a cat"
    assert np.abs(back.audio - audio).max() < 1 / 32768 + 1e-7


def test_ingest_speech_folder_is_keyed_and_resumes_without_duplicates(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    _write_wav(folder / "7-1-0.wav")
    (folder / "7-1.trans.txt").write_text("7-1-0 GO FORWARD\n")
    store = ArtifactStore(f"file://{tmp_path / 'store'}")
    ingest = INGESTERS.create("speech-folder?domain=office")
    first = ingest(store, "sp", folder)[names.UTTERANCES]
    again = ingest(store, "sp", folder)[names.UTTERANCES]
    assert first.rows == again.rows == 1 and first.attrs["domains"] == {"office": 1}
