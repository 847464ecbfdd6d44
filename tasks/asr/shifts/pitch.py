"""Pitch shift by ``semitones`` at unchanged duration: phase-vocoder time-stretch, then resample.

Stretching by r = 2^(semitones/12) with a phase vocoder (STFT, phase advanced per bin) and
reading the result r times faster restores the duration and scales every frequency by r. The
output is cut or zero-padded to the input length (the vocoder's frame rounding)."""

from __future__ import annotations

import math

import torch
from pydantic import Field

from trustflow.registry import Options
from trustflow.tasks.asr.shifts.base import SPEECH_SHIFTS, Shift, resample_linear

_NFFT, _HOP = 512, 128


def time_stretch(wave: torch.Tensor, rate: float) -> torch.Tensor:
    """Phase-vocoder stretch: output length ~ len / rate (rate > 1 is faster)."""
    window = torch.hann_window(_NFFT)
    spec = torch.stft(wave, _NFFT, _HOP, window=window, return_complex=True)  # (B, F, frames)
    frames = spec.shape[-1]
    steps = torch.arange(0, frames - 1, rate)
    lo = steps.floor().long()
    frac = (steps - lo.to(torch.float32))[None, None]
    mag = spec[..., lo].abs() * (1 - frac) + spec[..., lo + 1].abs() * frac
    expected = torch.linspace(0, math.pi * _HOP, spec.shape[1])[None, :, None]
    dphi = spec[..., lo + 1].angle() - spec[..., lo].angle() - expected
    dphi = dphi - 2 * math.pi * torch.round(dphi / (2 * math.pi))
    phase = torch.cumsum(dphi + expected, dim=-1) + spec[..., :1].angle()
    out = torch.polar(mag, phase)
    return torch.istft(out, _NFFT, _HOP, window=window)


class PitchOptions(Options):
    semitones: float = Field(default=2.0, ge=-12, le=12)


@SPEECH_SHIFTS.register("pitch", options=PitchOptions, example="pitch?semitones=-2")
class Pitch(Shift[PitchOptions]):
    def __call__(self, wave: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        r = 2 ** (self.options.semitones / 12)
        out = resample_linear(time_stretch(wave, 1 / r), r)
        n = wave.shape[-1]
        return out[..., :n] if out.shape[-1] >= n else torch.nn.functional.pad(out, (0, n - out.shape[-1]))
