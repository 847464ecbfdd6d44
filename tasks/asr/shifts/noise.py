"""Additive noise at a signal-to-noise ratio (white, or pink: 1/f power, closer to room noise).

The SNR is measured per utterance against its own RMS, so a quiet and a loud speaker get the
same relative corruption (MUSAN noise, as in WAPAT, is not available offline)."""

from __future__ import annotations

from typing import Literal

import torch

from trustflow.registry import Options
from trustflow.tasks.asr.shifts.base import SPEECH_SHIFTS, Shift, rms


class NoiseOptions(Options):
    snr_db: float = 10.0
    color: Literal["white", "pink"] = "white"


@SPEECH_SHIFTS.register("noise", options=NoiseOptions, example="noise?snr_db=5&color=pink")
class Noise(Shift[NoiseOptions]):
    def __call__(self, wave: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        noise = torch.randn(wave.shape, generator=gen)
        if self.options.color == "pink":
            spec = torch.fft.rfft(noise, dim=-1)
            f = torch.arange(spec.shape[-1], dtype=torch.float32).clamp_min(1.0)
            noise = torch.fft.irfft(spec / f.sqrt(), n=wave.shape[-1], dim=-1)
        scale = rms(wave) / rms(noise) * 10 ** (-self.options.snr_db / 20)
        return wave + noise * scale
