"""No attack: the clean inputs (the clean-accuracy row)."""

from __future__ import annotations

import torch

from trustflow.registry import NoOptions
from trustflow.tasks.robustness.attacks.base import EVAL_ATTACKS, EvalAttack


@EVAL_ATTACKS.register("clean", options=NoOptions)
class Clean(EvalAttack[NoOptions]):
    def perturb(
        self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        return x

    def __call__(
        self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        return x.detach()
