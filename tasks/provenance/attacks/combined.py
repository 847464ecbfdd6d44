"""The paper's combined attack, in order: permute every permutable conv, scale every
rescalable one by a ∈ [low, high], then fine-tune on the attacker's data."""

from __future__ import annotations

from pydantic import Field
from torch import nn

from trustflow.tasks.provenance.attacks.base import (
    OWNERSHIP_ATTACKS,
    AttackContext,
    AttackOptions,
    OwnershipAttack,
    TrainAttackOptions,
)
from trustflow.tasks.provenance.attacks.fine_tune import fine_tune
from trustflow.tasks.provenance.attacks.permute import Permute
from trustflow.tasks.provenance.attacks.scale import scale_model


class CombinedOptions(TrainAttackOptions):
    low: float = Field(0.1, gt=0.0)
    high: float = Field(10.0, gt=0.0)


@OWNERSHIP_ATTACKS.register("combined", options=CombinedOptions)
class Combined(OwnershipAttack[CombinedOptions]):
    def apply(self, model: nn.Module, context: AttackContext) -> nn.Module:
        out = Permute(AttackOptions(seed=self.options.seed)).apply(model, context)
        scale_model(out, self.options.low, self.options.high, self.generator())
        return fine_tune(out, self.options, context)
