"""Speed change (tempo and pitch together, like playing a tape faster); changes the length."""

from __future__ import annotations

import torch
from pydantic import Field

from trustflow.registry import Options
from trustflow.tasks.asr.shifts.base import SPEECH_SHIFTS, Shift, resample_linear


class SpeedOptions(Options):
    factor: float = Field(default=1.15, gt=0.5, lt=2.0)


@SPEECH_SHIFTS.register("speed", options=SpeedOptions, example="speed?factor=0.9")
class Speed(Shift[SpeedOptions]):
    length_preserving = False

    def __call__(self, wave: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return resample_linear(wave, self.options.factor)
