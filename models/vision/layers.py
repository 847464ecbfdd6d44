"""Layers shared by the vision classifiers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from trustflow.errors import ConfigError


def channel_stats(
    values: Sequence[float] | float | None, channels: int, default: float, what: str
) -> tuple[float, ...]:
    """``values`` as one float per channel: ``None`` → ``default``, one value → repeated."""
    if values is None:
        return (float(default),) * channels
    items: list[Any] = list(values) if isinstance(values, (list, tuple)) else [values]
    vals = tuple(float(v) for v in items)
    if len(vals) == 1:
        vals = vals * channels
    if len(vals) != channels:
        raise ConfigError(f"{what} has {len(vals)} values for {channels} input channels")
    return vals


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel, as the classifier's first layer.

    Inputs are images in [0, 1] (NCHW); mean and std are in that scale. They are buffers,
    so they travel in ``state_dict`` and a checkpoint is self-contained.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        mean_t = torch.as_tensor([float(m) for m in mean], dtype=torch.float32)
        std_t = torch.as_tensor([float(s) for s in std], dtype=torch.float32)
        if mean_t.ndim != 1 or mean_t.shape != std_t.shape or mean_t.numel() == 0:
            raise ConfigError(
                f"Normalize needs one mean and one std per channel, got mean={list(mean)} std={list(std)}"
            )
        if not bool((std_t > 0).all()):
            raise ConfigError(f"Normalize std must be > 0, got {list(std)}")
        self.register_buffer("mean", mean_t.view(1, -1, 1, 1))
        self.register_buffer("std", std_t.view(1, -1, 1, 1))

    @property
    def channels(self) -> int:
        return int(self.mean.shape[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        mean = [round(v, 4) for v in self.mean.flatten().tolist()]
        std = [round(v, 4) for v in self.std.flatten().tolist()]
        return f"mean={mean}, std={std}"
