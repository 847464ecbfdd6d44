"""TRADES (Zhang et al., 2019): clean CE + β · KL(clean ‖ adversarial).

    loss = CE(f(x), y) + β · (1/B) Σᵢ KL( softmax f(xᵢ) ‖ softmax f(x'ᵢ) )

The inner maximisation finds x' by ascending the KL divergence from the clean prediction
(no labels): start at x + 0.001·N(0, 1) (drawn from ``state.generator``, then clipped to
[0, 1] and the ε-ball), ``steps`` signed steps of ``alpha`` (``perturb.gradient_step`` with
the KL as loss, ``perturb.project`` after each). The attack runs with the model in eval
mode, as TRADES' reference code does (``attack_mode`` to change it); the loss forwards run
in the caller's mode. Both terms keep their gradient through the clean forward, as in the
reference. β = 6 is the paper's CIFAR-10 setting; β = 0 is standard training.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from pydantic import Field

from trustflow.tasks.robustness.perturb import gradient_step, project
from trustflow.tasks.robustness.training.base import (
    TRAINING_METHODS,
    AttackMode,
    StepOutput,
    TrainingMethod,
    TrainingOptions,
    TrainState,
    model_mode,
    unwrap,
)


def _kl_sum(logits_adv: torch.Tensor, p_clean: torch.Tensor) -> torch.Tensor:
    """Σ KL(p_clean ‖ softmax(logits_adv)) over the batch: the inner maximisation's loss."""
    return F.kl_div(F.log_softmax(logits_adv, dim=1), p_clean, reduction="sum")


class TRADESOptions(TrainingOptions):
    beta: float = Field(6.0, ge=0.0)
    alpha: float = Field(2 / 255, gt=0.0, le=1.0)
    steps: int = Field(10, ge=1, le=1000)
    init_std: float = Field(0.001, ge=0.0, description="std of the Gaussian start around x")
    attack_mode: AttackMode = "eval"


@TRAINING_METHODS.register("trades", options=TRADESOptions)
class TRADES(TrainingMethod[TRADESOptions]):
    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, state: TrainState) -> torch.Tensor:
        c = self.options
        m = unwrap(model)
        with model_mode(m, c.attack_mode):
            with torch.no_grad():
                p_clean = F.softmax(m(x), dim=1)
            noise = torch.randn(x.shape, generator=state.generator, device="cpu").to(x.device, x.dtype)
            x_adv = project(x + c.init_std * noise, x, c.eps)
            for _ in range(c.steps):
                x_adv = project(gradient_step(m, x_adv, p_clean, c.alpha, "linf", loss_fn=_kl_sum), x, c.eps)
        return x_adv.detach()

    def step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, state: TrainState) -> StepOutput:
        x_adv = self.perturb(model, x, y, state)
        logits_clean = model(x)
        logits_adv = model(x_adv)
        natural = F.cross_entropy(logits_clean, y)
        robust = F.kl_div(F.log_softmax(logits_adv, dim=1), F.softmax(logits_clean, dim=1), reduction="batchmean")
        loss = natural + self.options.beta * robust
        return StepOutput(
            loss=loss,
            logits_clean=logits_clean.detach(),
            logits_adv=logits_adv.detach(),
            stats={"natural": float(natural.detach()), "robust_kl": float(robust.detach())},
            x_adv=x_adv,
        )
