"""Reverberation with a synthetic room impulse response.

Why synthetic: no RIR corpus is available offline. The RIR is a direct-path impulse plus
exponentially decaying Gaussian noise whose decay gives the drawn T60 (60 dB down after
``t60`` seconds), the standard statistical model of late reverberation. The output is cut to
the input length (the tail past the end is dropped) and rescaled to the input's RMS."""

from __future__ import annotations

import torch
from pydantic import Field

from trustflow.registry import Options
from trustflow.tasks.asr.shifts.base import SAMPLE_RATE, SPEECH_SHIFTS, Shift, rms, uniform


class ReverbOptions(Options):
    t60_min: float = Field(default=0.3, gt=0, le=3)
    t60_max: float = Field(default=0.8, gt=0, le=3)
    direct: float = Field(default=1.0, ge=0)  # direct-path amplitude against the tail


@SPEECH_SHIFTS.register("reverb", options=ReverbOptions)
class Reverb(Shift[ReverbOptions]):
    def __call__(self, wave: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        t60 = uniform(gen, self.options.t60_min, max(self.options.t60_min, self.options.t60_max))
        n = int(t60 * SAMPLE_RATE)
        t = torch.arange(n, dtype=torch.float32) / SAMPLE_RATE
        rir = torch.randn(n, generator=gen) * torch.exp(-6.9078 * t / t60) * 0.1
        rir[0] = self.options.direct
        size = wave.shape[-1] + n
        out = torch.fft.irfft(torch.fft.rfft(wave, n=size, dim=-1) * torch.fft.rfft(rir, n=size), n=size, dim=-1)
        out = out[..., : wave.shape[-1]]
        return out * rms(wave) / rms(out)
