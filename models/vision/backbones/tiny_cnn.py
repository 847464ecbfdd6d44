"""A seeded, randomly initialised two-conv network: the backbone of the mechanics tests."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from trustflow.models.vision.attention_pool import BACKBONES, PooledBackbone, assemble
from trustflow.registry import Options


class TinyOptions(Options):
    size: int = Field(16, ge=8, le=128)
    width: int = Field(16, ge=2)
    heads: int = Field(2, ge=1)
    seed: int = 0


@BACKBONES.register("tiny_cnn", options=TinyOptions, example="tiny_cnn?width=8")
def tiny_cnn(*, size: int = 16, width: int = 16, heads: int = 2, seed: int = 0) -> PooledBackbone:
    """A randomly initialised two-conv network (seeded): for tests of the mechanics."""
    gen = torch.get_rng_state()
    torch.manual_seed(seed)
    try:
        features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
    finally:
        torch.set_rng_state(gen)
    from trustflow.models.vision.layers import Normalize

    return assemble(features, Normalize((0.5,) * 3, (0.25,) * 3), 2 * width, "tiny_cnn", size, heads)
