"""The waveform-shift contract and registry.

A shift maps a batch of 16 kHz waveforms (B, T) to shifted waveforms; the same objects are the
*domains* of the evaluation (noise at an SNR, reverb, telephone band, speed, pitch) and the
*augmentations* of WavAugment-style training and WAPAT. Every random choice comes from the
``torch.Generator`` passed in, so ``apply(wave, seed)`` is deterministic: an evaluation domain is
the same audio on every run and resume. ``length_preserving`` says whether the output has the
input's length (speed change does not; the CTC output lengths are recomputed then).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Generic, TypeVar

import torch

from trustflow.registry import Entry, Options, Registry

SAMPLE_RATE = 16000
OptionsT = TypeVar("OptionsT", bound=Options)


class Shift(ABC, Generic[OptionsT]):
    name: ClassVar[str]
    Options: ClassVar[type[Options]]
    length_preserving: ClassVar[bool] = True

    def __init__(self, options: OptionsT) -> None:
        self.options = options

    @abstractmethod
    def __call__(self, wave: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Shift (B, T) waveforms; all randomness from ``gen``."""

    def apply(self, wave: torch.Tensor, seed: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        return self(wave, gen)


def uniform(gen: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=gen))


def rms(wave: torch.Tensor) -> torch.Tensor:
    return wave.pow(2).mean(dim=-1, keepdim=True).clamp_min(1e-12).sqrt()


def fft_filter(wave: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
    """Multiply the spectrum by ``gain`` (rfft bins); zero-phase, length-preserving."""
    return torch.fft.irfft(torch.fft.rfft(wave, dim=-1) * gain, n=wave.shape[-1], dim=-1)


def band_gain(n: int, lo_hz: float, hi_hz: float, keep: bool) -> torch.Tensor:
    freqs = torch.fft.rfftfreq(n, d=1.0 / SAMPLE_RATE)
    inside = (freqs >= lo_hz) & (freqs <= hi_hz)
    return (inside if keep else ~inside).to(torch.float32)


def resample_linear(wave: torch.Tensor, factor: float) -> torch.Tensor:
    """Read the waveform ``factor`` times faster (linear interpolation); length T/factor."""
    n = wave.shape[-1]
    out = max(1, round(n / factor))
    pos = torch.arange(out, dtype=torch.float32) * factor
    lo = pos.floor().long().clamp(max=n - 1)
    hi = (lo + 1).clamp(max=n - 1)
    frac = pos - lo.to(torch.float32)
    return wave[..., lo] * (1 - frac) + wave[..., hi] * frac


def _build(entry: Entry[type[Shift[Any]]], options: Any) -> Shift[Any]:
    return entry.obj(options)


SPEECH_SHIFTS: Registry[type[Shift[Any]]] = Registry(
    "speech shift", plugins="trustflow.tasks.asr.shifts", factory=_build
)
