"""AutoAttack (Croce & Hein 2020), through ``torchattacks.AutoAttack``.

``version="standard"`` runs, in order and each only on the examples still classified
correctly: APGD-CE (untargeted, cross-entropy), APGD-T (targeted, DLR loss, over the
``n_classes - 1`` other classes), FAB-T (targeted minimum-norm) and Square (black-box, 5000
queries). ``"plus"`` adds restarts and the untargeted APGD-DLR / FAB variants.

torchattacks 3.3.0 differences from the reference implementation (fra31/auto-attack):
APGD, APGD-T and FAB run their torchattacks default of 10 iterations instead of 100, so
robust accuracy can be somewhat higher than the leaderboard protocol reports. Runs are
seeded (``seed``); torchattacks reseeds torch's global RNG, which is isolated here so the
caller's random state is unchanged.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field, field_validator

from trustflow.tasks.robustness.attacks._torchattacks import (
    TORCHATTACKS_NORMS,
    canonical_norm,
    isolated_rng,
    num_classes_of,
)
from trustflow.tasks.robustness.attacks.base import EVAL_ATTACKS, BudgetOptions, EvalAttack


class AutoAttackOptions(BudgetOptions):
    norm: Literal["linf", "l2"] = "linf"  # also accepts torchattacks' spelling Linf / L2
    version: Literal["standard", "plus"] = "standard"
    seed: int = 0
    n_classes: int | None = Field(None, ge=2)  # default: the model's number of logits

    @field_validator("norm", mode="before")
    @classmethod
    def _norm(cls, v: Any) -> Any:
        return canonical_norm(v)


@EVAL_ATTACKS.register("autoattack", options=AutoAttackOptions, example="autoattack?eps=8/255")
class AutoAttack(EvalAttack[AutoAttackOptions]):
    def perturb(
        self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        import torchattacks

        c = self.options
        n_classes = c.n_classes or num_classes_of(model, x)
        with isolated_rng(x.device):
            attack = torchattacks.AutoAttack(
                model,
                norm=TORCHATTACKS_NORMS[c.norm],
                eps=c.eps,
                version=c.version,
                n_classes=n_classes,
                seed=c.seed,
                verbose=False,
            )
            return attack(x, y)
