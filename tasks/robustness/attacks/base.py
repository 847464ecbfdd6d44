"""Evaluation attacks: one registered class per attack, each with its ``Options`` model.

An attack is built from a spec or a name and an options dict (``EVAL_ATTACKS.create("pgd?eps=8/255")``,
``build_attack("pgd", {"eps": 8/255})``) and then called as ``attack(model, x, y, generator) -> x_adv``:

* ``model`` is in eval mode and takes images in [0, 1] (its first layer normalises);
* ``x`` is a batch in [0, 1] (NCHW), ``y`` its int64 labels, both on the model's device;
* ``generator`` is a CPU ``torch.Generator`` for random starts (seeded by the caller);
* the result is detached, in [0, 1] and inside the ε-ball of ``x`` (checked by ``project``).

``eps`` (and ``alpha``) may be given as numbers or as fractions such as ``"8/255"``.
Adding an attack is one module in this package with one decorated class::

    class MyOptions(BudgetOptions):
        steps: int = Field(10, ge=1)

    @EVAL_ATTACKS.register("mine", options=MyOptions, example="mine?eps=8/255")
    class Mine(EvalAttack[MyOptions]):
        def perturb(self, model, x, y, generator): ...

The package's modules are imported on the first lookup (no import list to extend).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from fractions import Fraction
from typing import Any, ClassVar, Generic, TypeVar

import torch
from pydantic import field_validator

from trustflow.registry import Entry, Options, Registry
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


class BudgetOptions(Options):
    """Options of an attack with a perturbation budget (required: ``eps``)."""

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


O = TypeVar("O", bound=Options)  # noqa: E741  (the attack's options model)


class EvalAttack(Generic[O]):
    """An evaluation attack: registered with its ``Options`` model, implements ``perturb``.

    ``self.options`` is the validated options model (built by the registry)."""

    name: ClassVar[str] = ""  # set by the registry decorator

    def __init__(self, options: O) -> None:
        self.options = options

    @property
    def norm(self) -> Norm | None:
        return getattr(self.options, "norm", None)

    @property
    def eps(self) -> float:
        return float(getattr(self.options, "eps", 0.0))

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
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.options.model_dump().items()
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


def _build(entry: Entry[type[EvalAttack[Any]]], options: Any) -> EvalAttack[Any]:
    return entry.obj(options)


EVAL_ATTACKS: Registry[type[EvalAttack[Any]]] = Registry(
    "evaluation attack", plugins="trustflow.tasks.robustness.attacks", factory=_build
)


def build_attack(spec: str, options: Mapping[str, Any] | None = None) -> EvalAttack[Any]:
    """The attack a spec (``"pgd?eps=8/255"`` or a bare name) names, with ``options`` on top."""
    attack: EvalAttack[Any] = EVAL_ATTACKS.create(spec, **dict(options or {}))
    return attack
