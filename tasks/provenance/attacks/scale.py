"""Per-layer scaling: each rescalable conv's output by a ∈ [low, high] (log-uniform), the
reciprocal on the layers that read it (BatchNorm statistics compensated exactly)."""

from __future__ import annotations

import math

import torch
from pydantic import Field, model_validator
from torch import nn

from trustflow.errors import ConfigError
from trustflow.tasks.provenance.attacks.base import OWNERSHIP_ATTACKS, AttackContext, AttackOptions, OwnershipAttack
from trustflow.tasks.provenance.links import find_links, scale_link


class ScaleOptions(AttackOptions):
    low: float = Field(0.1, gt=0.0)
    high: float = Field(10.0, gt=0.0)

    @model_validator(mode="after")
    def _ordered(self) -> ScaleOptions:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must be <= high ({self.high})")
        return self


def draw_factor(low: float, high: float, generator: torch.Generator) -> float:
    r = float(torch.rand(1, generator=generator))
    return math.exp(math.log(low) + r * (math.log(high) - math.log(low)))


def scale_model(model: nn.Module, low: float, high: float, generator: torch.Generator) -> int:
    """Scale every rescalable link in place; returns how many were scaled."""
    links = [link for link in find_links(model) if link.homogeneous]
    if not links:
        raise ConfigError(f"scale: {type(model).__name__} has no conv whose output can be rescaled exactly")
    for link in links:
        scale_link(model, link, draw_factor(low, high, generator))
    return len(links)


@OWNERSHIP_ATTACKS.register("scale", options=ScaleOptions)
class Scale(OwnershipAttack[ScaleOptions]):
    function_preserving = True

    def apply(self, model: nn.Module, context: AttackContext) -> nn.Module:
        out = self.copy(model)
        scale_model(out, self.options.low, self.options.high, self.generator())
        return out
