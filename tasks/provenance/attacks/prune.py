"""Magnitude pruning: zero the smallest-magnitude weights of every conv and linear layer
(the fingerprint module's filters included), layer by layer."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from trustflow.models.fingerprint.module import FingerprintConv
from trustflow.tasks.provenance.attacks.base import OWNERSHIP_ATTACKS, AttackContext, AttackOptions, OwnershipAttack


class PruneOptions(AttackOptions):
    amount: float = Field(0.3, ge=0.0, lt=1.0, description="fraction of each layer's weights set to zero")


@OWNERSHIP_ATTACKS.register("prune", options=PruneOptions)
class Prune(OwnershipAttack[PruneOptions]):
    def apply(self, model: nn.Module, context: AttackContext) -> nn.Module:
        out = self.copy(model)
        with torch.no_grad():
            for m in out.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear, FingerprintConv)):
                    w = m.weight
                    k = int(self.options.amount * w.numel())
                    if k > 0:
                        cut = w.abs().flatten().kthvalue(k).values
                        w.mul_((w.abs() > cut).to(w.dtype))
        return out
