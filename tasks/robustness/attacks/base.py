"""Evaluation attacks: one registered class per attack, each with a pydantic config.

An attack is built from a name and a config dict (``build_attack("pgd", {"eps": 8/255})``)
and then called as ``attack(model, x, y, generator) -> x_adv``:

* ``model`` is in eval mode and takes images in [0, 1] (its first layer normalises);
* ``x`` is a batch in [0, 1] (NCHW), ``y`` its int64 labels, both on the model's device;
* ``generator`` is a CPU ``torch.Generator`` for random starts (seeded by the caller);
* the result is detached, in [0, 1] and inside the ε-ball of ``x`` (checked by ``project``).

``eps`` (and ``alpha``) may be given as numbers or as fractions such as ``"8/255"``.
Adding an attack is one file with a ``@EVAL_ATTACKS.register("name")`` class.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from fractions import Fraction
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from trustflow.errors import ConfigError
from trustflow.registry import Registry
from trustflow.tasks.robustness.perturb import Norm, project


def parse_budget(value: Any) -> Any:
    """``"8/255"`` → 0.0313...; numbers pass through (pydantic checks the rest)."""
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(Fraction(text)) if "/" in text else float(text)
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"not a number or fraction: {value!r}") from None
    return value


class AttackConfig(BaseModel):
    """Base of every attack config: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class BudgetConfig(AttackConfig):
    eps: float

    @field_validator("eps", mode="before")
    @classmethod
    def _budget(cls, v: Any) -> Any:
        return parse_budget(v)

    @field_validator("eps")
    @classmethod
    def _eps_range(cls, v: float) -> float:
        if not v >= 0.0:
            raise ValueError("eps must be >= 0 (in the [0, 1] pixel scale, e.g. 8/255)")
        return v


class EvalAttack:
    """An evaluation attack. Subclasses set ``config_model`` and implement ``perturb``."""

    config_model: ClassVar[type[AttackConfig]] = AttackConfig
    name: ClassVar[str] = ""

    def __init__(self, config: AttackConfig) -> None:
        self.config = config

    @property
    def norm(self) -> Norm | None:
        return getattr(self.config, "norm", None)

    @property
    def eps(self) -> float:
        return float(getattr(self.config, "eps", 0.0))

    def perturb(
        self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        raise NotImplementedError

    def __call__(
        self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        x = x.detach()
        with frozen_parameters(model):
            x_adv = self.perturb(model, x, y, generator)
        norm = self.norm or "linf"
        return project(x_adv.detach(), x, self.eps, norm)  # the contract, whatever the attack did

    def describe(self) -> str:
        args = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.config.model_dump().items()
        )
        return f"{self.name}({args})"


@contextlib.contextmanager
def frozen_parameters(model: torch.nn.Module) -> Iterator[None]:
    """No parameter needs a gradient while an evaluation attack runs (only the input does):
    autograd then skips weight-gradient bookkeeping. Flags are restored afterwards."""
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


EVAL_ATTACKS: Registry[type[EvalAttack]] = Registry("evaluation attack")


def build_attack(name: str, config: dict[str, Any] | None = None) -> EvalAttack:
    """Validate ``config`` against the attack's pydantic model; errors name attack and field."""
    cls = EVAL_ATTACKS.get(name)
    try:
        parsed = cls.config_model.model_validate(dict(config or {}))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"attack {name!r}: {problems}") from None
    return cls(parsed)
