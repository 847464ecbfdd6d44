"""FGSM with random start (Wong et al., 2020, "Fast is better than free").

x₀ uniform in the ε-ball (``perturb.random_start``, clipped to [0, 1]), one signed
gradient step of α = 1.25 ε from there (``perturb.fgsm`` with that start), projected back
to the ε-ball and [0, 1]; loss CE on the result. The attack runs in train mode, as in the
reference code. Prone to catastrophic overfitting at large ε or long schedules: watch it
with ``co_detection``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from pydantic import Field

from trustflow.tasks.robustness.perturb import fgsm, random_start
from trustflow.tasks.robustness.training.base import (
    TRAINING_METHODS,
    StepOutput,
    TrainingMethod,
    TrainingOptions,
    TrainState,
    model_mode,
    unwrap,
)


class FGSMRSOptions(TrainingOptions):
    alpha: float | None = Field(None, gt=0.0, le=1.0, description="step size; None: 1.25 × eps")


@TRAINING_METHODS.register("fgsm_rs", options=FGSMRSOptions)
class FGSMRS(TrainingMethod[FGSMRSOptions]):
    @property
    def step_size(self) -> float:
        return 1.25 * self.options.eps if self.options.alpha is None else self.options.alpha

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, state: TrainState) -> torch.Tensor:
        c = self.options
        m = unwrap(model)
        start = random_start(x, c.eps, "linf", state.generator)
        with model_mode(m, c.attack_mode):
            return fgsm(m, x, y, c.eps, alpha=self.step_size, start=start)

    def step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, state: TrainState) -> StepOutput:
        x_adv = self.perturb(model, x, y, state)
        logits_clean = self._clean_logits_for_stats(model, x)
        logits_adv = model(x_adv)
        loss = F.cross_entropy(logits_adv, y)
        return StepOutput(loss=loss, logits_clean=logits_clean, logits_adv=logits_adv.detach(), stats={}, x_adv=x_adv)
