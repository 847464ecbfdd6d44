"""Telephone channel: 300-3400 Hz band-pass and, optionally, 8-bit mu-law (G.711-like) coding.

The band limits of a narrow-band phone line and its companding quantisation are the classic
channel mismatch for a model trained on wide-band speech; the sample rate stays 16 kHz."""

from __future__ import annotations

import math

import torch

from trustflow.registry import Options
from trustflow.tasks.asr.shifts.base import SPEECH_SHIFTS, Shift, band_gain, fft_filter


class TelephoneOptions(Options):
    low_hz: float = 300.0
    high_hz: float = 3400.0
    mulaw: bool = True


@SPEECH_SHIFTS.register("telephone", options=TelephoneOptions)
class Telephone(Shift[TelephoneOptions]):
    def __call__(self, wave: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        out = fft_filter(wave, band_gain(wave.shape[-1], self.options.low_hz, self.options.high_hz, keep=True))
        if self.options.mulaw:
            mu = 255.0
            peak = out.abs().amax(dim=-1, keepdim=True).clamp_min(1e-6)
            x = out / peak
            y = torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)
            y = torch.round((y + 1) / 2 * mu) / mu * 2 - 1
            out = torch.sign(y) * ((1 + mu) ** y.abs() - 1) / mu * peak
        return out
