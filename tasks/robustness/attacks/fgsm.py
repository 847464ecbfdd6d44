"""FGSM (Goodfellow et al. 2015): one signed-gradient step of size ε, L∞."""

from __future__ import annotations

from typing import Literal

import torch

from trustflow.tasks.robustness import perturb
from trustflow.tasks.robustness.attacks.base import EVAL_ATTACKS, BudgetOptions, EvalAttack


class FGSMOptions(BudgetOptions):
    norm: Literal["linf"] = "linf"


@EVAL_ATTACKS.register("fgsm", options=FGSMOptions, example="fgsm?eps=8/255")
class FGSM(EvalAttack[FGSMOptions]):
    def perturb(
        self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        return perturb.fgsm(model, x, y, self.options.eps)
