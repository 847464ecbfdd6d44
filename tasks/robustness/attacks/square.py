"""Square Attack (Andriushchenko et al. 2020): score-based black-box random search, through
``torchattacks.Square`` (margin loss, L∞ or L2). It needs no gradients, so it checks that a
model's robustness is not gradient masking."""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field, field_validator

from trustflow.tasks.robustness.attacks._torchattacks import TORCHATTACKS_NORMS, canonical_norm, isolated_rng
from trustflow.tasks.robustness.attacks.base import EVAL_ATTACKS, BudgetOptions, EvalAttack


class SquareOptions(BudgetOptions):
    norm: Literal["linf", "l2"] = "linf"
    n_queries: int = Field(5000, ge=1)
    p_init: float = Field(0.8, gt=0, le=1)
    loss: Literal["margin", "ce"] = "margin"
    restarts: int = Field(1, ge=1)
    seed: int = 0

    @field_validator("norm", mode="before")
    @classmethod
    def _norm(cls, v: Any) -> Any:
        return canonical_norm(v)


@EVAL_ATTACKS.register("square", options=SquareOptions, example="square?eps=8/255")
class Square(EvalAttack[SquareOptions]):
    def perturb(
        self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        import torchattacks

        c = self.options
        with isolated_rng(x.device):
            attack = torchattacks.Square(
                model,
                norm=TORCHATTACKS_NORMS[c.norm],
                eps=c.eps,
                n_queries=c.n_queries,
                n_restarts=c.restarts,
                p_init=c.p_init,
                loss=c.loss,
                seed=c.seed,
            )
            return attack(x, y)
