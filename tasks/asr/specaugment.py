"""SpecAugment on log-mel features: ``freq_masks`` frequency bands and ``time_masks`` time spans
set to the utterance's mean (no time warping: it is the least useful of the three in the
paper's ablation and the only one that is not a cheap mask)."""

from __future__ import annotations

import torch
from pydantic import Field

from trustflow.registry import Options


class SpecAugmentOptions(Options):
    freq_masks: int = Field(default=2, ge=0)
    freq_width: int = Field(default=15, ge=1)
    time_masks: int = Field(default=2, ge=0)
    time_width: int = Field(default=20, ge=1)  # frames (10 ms each)


class SpecAugment:
    def __init__(self, options: SpecAugmentOptions, gen: torch.Generator) -> None:
        self.options, self.gen = options, gen

    def __call__(self, mel: torch.Tensor) -> torch.Tensor:
        out = mel.clone()
        b, frames, bins = out.shape
        fill = mel.mean(dim=(1, 2))
        for i in range(b):
            for _ in range(self.options.freq_masks):
                w = int(torch.randint(0, self.options.freq_width + 1, (), generator=self.gen))
                f0 = int(torch.randint(0, max(1, bins - w), (), generator=self.gen))
                out[i, :, f0 : f0 + w] = fill[i]
            for _ in range(self.options.time_masks):
                w = int(torch.randint(0, min(self.options.time_width, frames // 5) + 1, (), generator=self.gen))
                t0 = int(torch.randint(0, max(1, frames - w), (), generator=self.gen))
                out[i, t0 : t0 + w, :] = fill[i]
        return out
