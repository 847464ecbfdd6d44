"""Adversarial debiasing with a gradient-reversal discriminator (Ganin & Lempitsky style).

A discriminator reads the pooled vector through a gradient-reversal layer: one backward
pass trains it to predict the attribute while the encoder receives ``-lam`` times that
gradient, i.e. learns to hide the attribute. Unlike fairBERTs nothing is added to the
representation: the encoder itself must change.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field
from torch import nn

from trustflow.models.text.encoder import TextClassifier
from trustflow.registry import Options
from trustflow.tasks.fairness.data import TextData
from trustflow.tasks.fairness.methods.base import FAIRNESS_METHODS, Batch, FairnessMethod, TrainConfig, main_optimizer
from trustflow.tasks.fairness.methods.fairberts import discriminator
from trustflow.tasks.fairness.model import FairModel


class _Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, lam: float) -> torch.Tensor:
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.lam * grad, None


def reverse_gradient(x: torch.Tensor, lam: float) -> torch.Tensor:
    """Identity forward, gradient × (−lam) backward."""
    out: torch.Tensor = _Reverse.apply(x, lam)
    return out


class AdversarialOptions(Options):
    lam: float = Field(default=1.0, ge=0)
    width: int = Field(default=256, ge=8)


@FAIRNESS_METHODS.register("adversarial", options=AdversarialOptions, example="adversarial?lam=1")
class Adversarial(FairnessMethod[AdversarialOptions]):
    def setup(self, classifier: TextClassifier, data: TextData, config: TrainConfig) -> FairModel:
        self.config = config
        model = FairModel(classifier)
        self.discriminator = discriminator(classifier.hidden, len(data.groups), self.options.width)
        self.optimizer = main_optimizer(model, config, (self.discriminator,))
        return model

    def modules(self) -> dict[str, nn.Module]:
        return {"discriminator": self.discriminator}

    def step(self, model: FairModel, batch: Batch) -> dict[str, float]:
        assert self.optimizer is not None
        rep = model.represent(batch.input_ids, batch.attention_mask)
        task = nn.functional.cross_entropy(model.classifier.classify(rep), batch.y)
        disc = nn.functional.cross_entropy(self.discriminator(reverse_gradient(rep, self.options.lam)), batch.z)
        self.optimizer.zero_grad(set_to_none=True)
        (task + disc).backward()
        self.optimizer.step()
        return {"task": task.item(), "disc": disc.item()}
