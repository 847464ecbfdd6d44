"""WavAugment's band-reject: remove one random frequency band (width drawn up to ``max_width_hz``)."""

from __future__ import annotations

import torch
from pydantic import Field

from trustflow.registry import Options
from trustflow.tasks.asr.shifts.base import SAMPLE_RATE, SPEECH_SHIFTS, Shift, band_gain, fft_filter, uniform


class BandRejectOptions(Options):
    min_width_hz: float = Field(default=100.0, gt=0)
    max_width_hz: float = Field(default=800.0, gt=0)


@SPEECH_SHIFTS.register("band-reject", options=BandRejectOptions)
class BandReject(Shift[BandRejectOptions]):
    def __call__(self, wave: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        width = uniform(gen, self.options.min_width_hz, max(self.options.min_width_hz, self.options.max_width_hz))
        lo = uniform(gen, 100.0, SAMPLE_RATE / 2 - width - 100.0)
        return fft_filter(wave, band_gain(wave.shape[-1], lo, lo + width, keep=False))
