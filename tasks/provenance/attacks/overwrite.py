"""Overwriting: the attacker embeds a fingerprint of their own. The module's filters are
re-drawn (a fresh module is inserted when the model has none) and the model is trained on
the attacker's data with the anti-overwriting objective, as the owner did."""

from __future__ import annotations

import math

import torch
from pydantic import Field
from torch import nn

from trustflow.models.fingerprint.module import fingerprint_layers, insert_fingerprint
from trustflow.tasks.provenance.attacks.base import (
    OWNERSHIP_ATTACKS,
    AttackContext,
    OwnershipAttack,
    TrainAttackOptions,
)
from trustflow.tasks.provenance.train import train_classifier


class OverwriteOptions(TrainAttackOptions):
    layer: str | None = Field(None, description="where to insert a module when the model has none")


@OWNERSHIP_ATTACKS.register("overwrite", options=OverwriteOptions)
class Overwrite(OwnershipAttack[OverwriteOptions]):
    def apply(self, model: nn.Module, context: AttackContext) -> nn.Module:
        out = self.copy(model)
        layers = fingerprint_layers(out)
        g = torch.Generator().manual_seed(self.options.seed + 7919)
        if layers:
            fp = next(iter(layers.values())).fingerprint
            with torch.no_grad():
                fan_in = fp.weight[0].numel()
                fp.weight.copy_(torch.randn(fp.weight.shape, generator=g) / math.sqrt(fan_in))
                fp.bias.zero_()
        else:
            convs = [n for n, m in out.named_modules() if isinstance(m, nn.Conv2d)]
            layer = self.options.layer or (convs[len(convs) // 2] if convs else "")
            insert_fingerprint(out, {"layer": layer, "seed": self.options.seed + 7919})
        data = context.data(self.options.dataset, "train", self.options.limit)
        train_classifier(
            out,
            data,
            epochs=self.options.epochs,
            lr=self.options.lr,
            batch_size=self.options.batch_size,
            fingerprint=True,
            seed=self.options.seed,
            max_steps=self.options.max_steps,
        )
        return out.eval()
