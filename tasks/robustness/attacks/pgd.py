"""PGD (Madry et al. 2018): projected gradient ascent on the cross-entropy, L∞ or L2.

Defaults follow the usual evaluation: 10 steps of α = 2.5·ε/steps from a random start, one
restart. With several restarts each example keeps its worst case (``perturb.pgd``).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field, field_validator

from trustflow.tasks.robustness import perturb
from trustflow.tasks.robustness.attacks.base import EVAL_ATTACKS, BudgetOptions, EvalAttack, parse_budget


class PGDOptions(BudgetOptions):
    alpha: float | None = None  # step size; default 2.5 * eps / steps
    steps: int = Field(10, ge=1)
    norm: Literal["linf", "l2"] = "linf"
    restarts: int = Field(1, ge=1)
    random_start: bool = True

    @field_validator("alpha", mode="before")
    @classmethod
    def _alpha(cls, v: Any) -> Any:
        return parse_budget(v)

    @field_validator("norm", mode="before")
    @classmethod
    def _norm(cls, v: Any) -> Any:
        return v.lower() if isinstance(v, str) else v

    @property
    def step_size(self) -> float:
        return 2.5 * self.eps / self.steps if self.alpha is None else self.alpha


@EVAL_ATTACKS.register("pgd", options=PGDOptions, example="pgd?eps=8/255")
class PGD(EvalAttack[PGDOptions]):
    def perturb(
        self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        c = self.options
        if c.restarts > 1:
            return perturb.pgd(
                model, x, y, c.eps, c.step_size, c.steps, c.norm, c.random_start, c.restarts, generator=generator
            )
        # One restart: the same iteration as perturb.pgd, without its keep-the-best forward pass
        # (nothing to choose between), which the evaluation's own forward pass would repeat.
        x_adv = perturb.random_start(x, c.eps, c.norm, generator) if c.random_start else x
        for _ in range(c.steps):
            x_adv = perturb.project(perturb.gradient_step(model, x_adv, y, c.step_size, c.norm), x, c.eps, c.norm)
        return x_adv
