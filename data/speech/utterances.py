"""Speech utterances as rows: audio (16 kHz), transcript, phones, domain, speaker/voice.

Three sources, one row layout (``SPEECH_UTTERANCES``), so training, shifts and metrics read one thing:

* ``synthesise`` — espeak-ng speech: sentences × voices (voice+variant) × rate × pitch. Why
  espeak: it is the only offline TTS here, it has dozens of voice variants and accents (so an
  *unseen voice* is a controlled domain shift), and its phonemes are exactly the targets.
  Seeded: the same config gives the same rows (sentences and settings drawn from ``seed``).
* ``read_pocketsphinx`` — Debian ``pocketsphinx-testdata``: real recorded speech (5 LibriVox
  read sentences, 5 card-game commands, plus ``goforward.raw``), the only real English
  utterances with transcripts available offline; the evaluation's "real speech" domain.
* ``read_speech_folder`` — a user's LibriSpeech-style tree: ``*.trans.txt`` files whose lines
  are ``<utterance-id> <TRANSCRIPT>`` next to ``<utterance-id>.flac|.wav``.

Phones come from the transcript through espeak-ng's per-word IPA (data/speech/phones.py),
so real and synthetic rows share one target convention.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from pydantic import Field

from trustflow.data.schemas import SPEECH_UTTERANCES
from trustflow.data.speech.audio import float_to_pcm16, pcm16_to_float, read_audio, read_wav_bytes
from trustflow.data.speech.phones import espeak_binary, lexicon_for, normalise_text, phones_for
from trustflow.errors import ConfigError, InputError
from trustflow.registry import Options

POCKETSPHINX_DIR = Path("/usr/share/pocketsphinx/test/data")
# goforward.raw has no transcript file; its text is what pocketsphinx's own tests decode it to
_GOFORWARD = "go forward ten meters"
_TRANS_LINE = re.compile(r"^\s*(?:<s>)?\s*(.*?)\s*(?:</s>)?\s*\(([^)]+)\)\s*$")

# small closed vocabulary for synthetic sentences: commands, numbers, colours and objects give
# short utterances with repeated words (a lexicon the tiny model can learn in minutes)
_VERBS = ("move", "place", "take", "show", "find", "open", "close", "turn", "give", "set")
_DETS = ("the", "a", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_ADJS = ("red", "green", "blue", "black", "white", "small", "large", "old", "new", "bright")
_NOUNS = ("box", "door", "card", "light", "chair", "table", "window", "book", "cup", "ball", "clock", "key")
_PREPS = ("on", "under", "near", "behind", "into", "from")

TRAIN_VOICES = ("en-us", "en-us+m3", "en-us+f2", "en-gb", "en-gb+m1", "en-gb+f3")
UNSEEN_VOICES = ("en-gb-scotland+m7", "en-gb-x-rp+f4", "en-us+klatt2", "en-gb-x-gbclan+croak")


class SynthConfig(Options):
    """Which espeak-ng utterances to make (every knob seeded by ``seed``)."""

    sentences: int = Field(default=200, ge=1, le=100_000)
    voices: tuple[str, ...] = TRAIN_VOICES
    rates: tuple[int, ...] = (140, 170, 200)  # words per minute
    pitches: tuple[int, ...] = (30, 50, 70)  # espeak 0-99
    per_sentence: int = Field(default=1, ge=1, le=50)  # (voice, rate, pitch) draws per sentence
    domain: str = "espeak"
    seed: int = 0


@dataclass
class Utterance:
    utt_id: str
    audio: np.ndarray  # float32, 16 kHz, mono
    transcript: str  # normalised: lower case words
    phones: list[str]
    domain: str
    speaker: str
    source: str

    @property
    def seconds(self) -> float:
        return len(self.audio) / 16000


def utt_id_for(source: str, speaker: str, transcript: str, extra: str = "") -> str:
    return hashlib.sha256(f"{source}\x1f{speaker}\x1f{transcript}\x1f{extra}".encode()).hexdigest()[:20]


def make_sentences(n: int, seed: int) -> list[str]:
    """``n`` distinct sentences from the closed grammar (verb det [adj] noun [prep det noun])."""
    rng = np.random.default_rng(seed)
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        words = [rng.choice(_VERBS), rng.choice(_DETS)]
        if rng.random() < 0.6:
            words.append(rng.choice(_ADJS))
        words.append(rng.choice(_NOUNS))
        if rng.random() < 0.5:
            words += [rng.choice(_PREPS), rng.choice(_DETS), rng.choice(_NOUNS)]
        text = " ".join(str(w) for w in words)
        if text not in seen or len(seen) >= 5000:
            seen.add(text)
            out.append(text)
    return out


def espeak_wav(text: str, voice: str, rate: int, pitch: int) -> np.ndarray:
    """One utterance from espeak-ng, resampled to 16 kHz."""
    proc = subprocess.run(
        [espeak_binary(), "-v", voice, "-s", str(rate), "-p", str(pitch), "--stdout", text],
        capture_output=True,
        check=False,
        timeout=60,
    )
    if proc.returncode != 0 or not proc.stdout:
        raise ConfigError(f"espeak-ng voice {voice!r}: {proc.stderr.decode(errors='replace').strip() or 'no audio'}")
    return read_wav_bytes(proc.stdout, f"espeak-ng voice {voice}")


def synthesise(config: SynthConfig, sentences: Sequence[str] | None = None) -> list[Utterance]:
    """espeak-ng utterances for ``sentences`` (default: ``config.sentences`` from the grammar)."""
    texts = [normalise_text(s) for s in (sentences or make_sentences(config.sentences, config.seed))]
    lexicon = lexicon_for(w for t in texts for w in t.split())
    rng = np.random.default_rng(config.seed + 1)
    rows: list[Utterance] = []
    for text in texts:
        for _ in range(config.per_sentence):
            voice = str(rng.choice(config.voices))
            rate, pitch = int(rng.choice(config.rates)), int(rng.choice(config.pitches))
            speaker = f"{voice}@s{rate}p{pitch}"
            audio = espeak_wav(text, voice, rate, pitch)
            uid = utt_id_for("espeak", speaker, text)
            rows.append(Utterance(uid, audio, text, phones_for(text, lexicon), config.domain, speaker, "espeak"))
    return rows


def parse_transcription(path: Path) -> dict[str, str]:
    """Sphinx ``<s> words </s> (id)`` lines -> id: normalised text; a bad line is an error."""
    out: dict[str, str] = {}
    for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        m = _TRANS_LINE.match(line)
        if m is None:
            raise InputError(f"{path}:{no}: expected '<s> words </s> (utterance-id)'")
        out[m.group(2).strip()] = normalise_text(m.group(1))
    return out


def read_pocketsphinx(folder: Path = POCKETSPHINX_DIR) -> list[Utterance]:
    """The recorded pocketsphinx-testdata utterances that have transcripts (domain ``real``)."""
    if not folder.is_dir():
        raise ConfigError(f"{folder} not found; install Debian package pocketsphinx-testdata (`make speech`)")
    pairs: list[tuple[Path, str, str]] = []
    for sub, trans in (("librivox", "transcription"), ("cards", "cards.transcription")):
        for uid, text in parse_transcription(folder / sub / trans).items():
            pairs.append((folder / sub / f"{Path(uid).name}.wav", text, f"pocketsphinx:{sub}"))
    pairs.append((folder / "goforward.raw", _GOFORWARD, "pocketsphinx:goforward"))
    return _rows_from_files(pairs, "real")


def read_speech_folder(folder: Path, domain: str | None = None) -> list[Utterance]:
    """A LibriSpeech-style tree (``*.trans.txt`` + ``<id>.flac|.wav``); domain: the folder name."""
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder")
    pairs: list[tuple[Path, str, str]] = []
    for trans in sorted(folder.rglob("*.trans.txt")):
        for no, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            uid, _, text = line.strip().partition(" ")
            if not text.strip():
                raise InputError(f"{trans}:{no}: expected '<utterance-id> <transcript>'")
            audio = next(
                (trans.parent / f"{uid}{ext}" for ext in (".flac", ".wav") if (trans.parent / f"{uid}{ext}").is_file()),
                None,
            )
            if audio is None:
                raise InputError(f"{trans}:{no}: no {uid}.flac or {uid}.wav beside the transcript")
            pairs.append((audio, normalise_text(text), uid.split("-")[0]))
    if not pairs:
        raise InputError(f"{folder}: no *.trans.txt files (LibriSpeech layout: <id> <TRANSCRIPT> lines)")
    return _rows_from_files(pairs, domain or folder.name)


def _rows_from_files(pairs: list[tuple[Path, str, str]], domain: str) -> list[Utterance]:
    lexicon = lexicon_for(w for _, t, _ in pairs for w in t.split())
    rows = []
    for path, text, speaker in pairs:
        if not text:
            raise InputError(f"{path}: empty transcript")
        audio = read_audio(path)
        if len(audio) < 1600:
            raise InputError(f"{path}: {len(audio)} samples; under 0.1 s of audio")
        rows.append(
            Utterance(
                utt_id_for(domain, speaker, text, path.name),
                audio,
                text,
                phones_for(text, lexicon),
                domain,
                speaker,
                path.stem,
            )
        )
    return rows


def validate(rows: Sequence[Utterance]) -> None:
    """Every row usable for CTC training: audio finite and non-empty, a transcript, phones."""
    for r in rows:
        if r.audio.ndim != 1 or len(r.audio) == 0:
            raise InputError(f"utterance {r.utt_id} ({r.source}): audio must be mono and non-empty")
        if not np.isfinite(r.audio).all():
            raise InputError(f"utterance {r.utt_id} ({r.source}): audio holds NaN or inf")
        if not r.transcript.strip() or not r.phones:
            raise InputError(f"utterance {r.utt_id} ({r.source}): empty transcript or phones")


def utterances_table(rows: Sequence[Utterance]) -> pa.Table:
    validate(rows)
    return pa.Table.from_pylist(
        [
            {
                "utt_id": r.utt_id,
                "audio": float_to_pcm16(r.audio),
                "samples": len(r.audio),
                "transcript": r.transcript,
                "phones": " ".join(r.phones),
                "domain": r.domain,
                "speaker": r.speaker,
                "source": r.source,
            }
            for r in rows
        ],
        schema=SPEECH_UTTERANCES.schema,
    )


def utterances_from_table(table: pa.Table) -> list[Utterance]:
    return [
        Utterance(
            d["utt_id"],
            pcm16_to_float(d["audio"]),
            d["transcript"],
            d["phones"].split(" "),
            d["domain"],
            d["speaker"],
            d["source"],
        )
        for d in table.to_pylist()
    ]
