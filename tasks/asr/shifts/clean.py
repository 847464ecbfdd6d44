"""No shift: the clean domain (and the identity augmentation)."""

from __future__ import annotations

import torch

from trustflow.registry import NoOptions
from trustflow.tasks.asr.shifts.base import SPEECH_SHIFTS, Shift


@SPEECH_SHIFTS.register("clean")
class Clean(Shift[NoOptions]):
    def __call__(self, wave: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return wave.clone()
