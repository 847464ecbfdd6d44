"""WavAugment's time-drop: zero ``spans`` random stretches of up to ``max_ms`` each."""

from __future__ import annotations

import torch
from pydantic import Field

from trustflow.registry import Options
from trustflow.tasks.asr.shifts.base import SAMPLE_RATE, SPEECH_SHIFTS, Shift


class TimeDropOptions(Options):
    spans: int = Field(default=2, ge=1)
    max_ms: float = Field(default=100.0, gt=0)


@SPEECH_SHIFTS.register("time-drop", options=TimeDropOptions)
class TimeDrop(Shift[TimeDropOptions]):
    def __call__(self, wave: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        out = wave.clone()
        n = wave.shape[-1]
        top = max(1, int(self.options.max_ms * SAMPLE_RATE / 1000))
        for b in range(wave.shape[0]):
            for _ in range(self.options.spans):
                width = int(torch.randint(1, top + 1, (), generator=gen))
                start = int(torch.randint(0, max(1, n - width), (), generator=gen))
                out[b, start : start + width] = 0.0
        return out
