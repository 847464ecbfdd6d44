"""PGD adversarial training (Madry et al., 2018): CE on PGD-k examples.

Defaults: ε 8/255, step 2/255, 10 steps, uniform random start in the ε-ball. The attack
runs with the model in train mode (``attack_mode="train"``), as in Madry's and Rice et
al.'s reference code: BatchNorm normalises the attack's forwards with the batch's own
statistics, the same ones the update sees. Its cost is that the k attack forwards also
move the BatchNorm running statistics; ``attack_mode="eval"`` (the TRADES convention)
avoids that and attacks the model as it will be evaluated. The attack is
``perturb.pgd`` with one restart (its final no-grad forward picks nothing but costs one
forward).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from pydantic import Field

from trustflow.tasks.robustness.perturb import pgd
from trustflow.tasks.robustness.training.base import (
    TRAINING_METHODS,
    StepOutput,
    TrainingMethod,
    TrainingOptions,
    TrainState,
    model_mode,
    unwrap,
)


class PGDATOptions(TrainingOptions):
    alpha: float = Field(2 / 255, gt=0.0, le=1.0, description="step size of each PGD step")
    steps: int = Field(10, ge=1, le=1000)
    random_start: bool = True


@TRAINING_METHODS.register("pgd_at", options=PGDATOptions)
class PGDAT(TrainingMethod[PGDATOptions]):
    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, state: TrainState) -> torch.Tensor:
        c = self.options
        m = unwrap(model)
        with model_mode(m, c.attack_mode):
            return pgd(m, x, y, c.eps, c.alpha, c.steps, "linf", random_init=c.random_start, generator=state.generator)

    def step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, state: TrainState) -> StepOutput:
        x_adv = self.perturb(model, x, y, state)
        logits_clean = self._clean_logits_for_stats(model, x)
        logits_adv = model(x_adv)
        loss = F.cross_entropy(logits_adv, y)
        return StepOutput(loss=loss, logits_clean=logits_clean, logits_adv=logits_adv.detach(), stats={}, x_adv=x_adv)
