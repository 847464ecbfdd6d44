"""WAV in and out with the standard library, and resampling to the models' 16 kHz.

``wave`` reads PCM WAV without a native dependency; FLAC (LibriSpeech's format) goes through
``soundfile`` only when it is installed, and otherwise is a clear error naming the file.
Resampling is polyphase (scipy), which keeps the band below the new Nyquist intact.
"""

from __future__ import annotations

import importlib.util
import io
import wave
from fractions import Fraction
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from trustflow.errors import ConfigError

SAMPLE_RATE = 16000


def resample(audio: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    if rate == target:
        return audio.astype(np.float32)
    ratio = Fraction(target, rate)
    return resample_poly(audio, ratio.numerator, ratio.denominator).astype(np.float32)


def pcm16_to_float(raw: bytes) -> np.ndarray:
    return np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0


def float_to_pcm16(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1.0, 32767 / 32768) * 32768.0).round().astype("<i2").tobytes()


def read_wav_bytes(data: bytes, what: str) -> np.ndarray:
    """Mono float32 at 16 kHz from WAV bytes (16-bit PCM; channels averaged)."""
    try:
        with wave.open(io.BytesIO(data)) as w:
            rate, channels, width, frames = (
                w.getframerate(),
                w.getnchannels(),
                w.getsampwidth(),
                w.readframes(w.getnframes()),
            )
    except (wave.Error, EOFError) as exc:
        raise ConfigError(f"{what}: not a PCM WAV file ({exc})") from None
    if width != 2:
        raise ConfigError(f"{what}: {8 * width}-bit WAV; only 16-bit PCM is read")
    audio = pcm16_to_float(frames).reshape(-1, channels).mean(axis=1)
    return resample(audio, rate)


def read_audio(path: Path) -> np.ndarray:
    """A WAV, FLAC (needs soundfile) or headerless 16 kHz 16-bit ``.raw`` file -> float32 at 16 kHz."""
    suffix = path.suffix.lower()
    if suffix == ".raw":
        return pcm16_to_float(path.read_bytes())
    if suffix == ".flac":
        if importlib.util.find_spec("soundfile") is None:
            raise ConfigError(f"{path}: FLAC needs the soundfile package; convert to WAV or install it")
        import soundfile

        audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        return resample(audio.mean(axis=1), int(rate))
    return read_wav_bytes(path.read_bytes(), str(path))


def wav_bytes(audio: np.ndarray, rate: int = SAMPLE_RATE) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(float_to_pcm16(audio))
    return buf.getvalue()
