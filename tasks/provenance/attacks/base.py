"""The ownership-attack contract and registry.

An attack takes a model and returns a *new* model (the input is never changed):
``OWNERSHIP_ATTACKS.create("combined?lr=0.01&epochs=2").apply(model, context)``.
``function_preserving`` attacks (permute, scale) must leave the logits unchanged (checked
over the whole registry by tests/unit/test_provenance_attacks.py); the others train or
prune. ``AttackContext`` supplies the data the training attacks need and the seed.

Adding an attack is one module in this package with one decorated class::

    class MyOptions(AttackOptions):
        amount: float = 0.5

    @OWNERSHIP_ATTACKS.register("mine", options=MyOptions)
    class Mine(OwnershipAttack[MyOptions]):
        def apply(self, model, context): ...
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

import torch
from pydantic import Field
from torch import nn

from trustflow.data.vision.datasets import ArrayDataset, load_dataset
from trustflow.registry import Entry, Options, Registry


class AttackOptions(Options):
    """Options every ownership attack accepts."""

    seed: int = 0


class TrainAttackOptions(AttackOptions):
    """Options of the attacks that train (fine-tune, overwrite, distill, combined)."""

    dataset: str = Field("digits", description="dataset spec of the attacker's data (data/vision/datasets.py)")
    lr: float = Field(0.01, gt=0.0)
    epochs: int = Field(1, ge=1)
    batch_size: int = Field(64, ge=1)
    max_steps: int | None = Field(None, ge=1, description="cap on batches per epoch (smoke runs)")
    limit: int | None = Field(None, ge=1, description="use only the first N training images")


@dataclass
class AttackContext:
    """What an attack may use besides the model: the input size of the model (attackers'
    data is resized to it), and a loader of dataset specs (cached, overridable in tests)."""

    image_size: int | None = None
    loader: Callable[[str, str, int | None], ArrayDataset] = load_dataset
    _cache: dict[tuple[str, str, int | None], ArrayDataset] = field(default_factory=dict)

    def data(self, spec: str, split: str = "train", limit: int | None = None) -> ArrayDataset:
        key = (spec, split, self.image_size)
        if key not in self._cache:
            self._cache[key] = self.loader(spec, split, self.image_size)
        data = self._cache[key]
        return data if limit is None else data.subset(limit)


O = TypeVar("O", bound=AttackOptions)  # noqa: E741


class OwnershipAttack(ABC, Generic[O]):
    """One attack; ``apply`` returns a new model in eval mode."""

    name: ClassVar[str] = ""
    function_preserving: ClassVar[bool] = False

    def __init__(self, options: O) -> None:
        self.options = options

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.options!r})"

    def generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(int(self.options.seed))

    @abstractmethod
    def apply(self, model: nn.Module, context: AttackContext) -> nn.Module:
        """The attacked copy of ``model``."""

    @staticmethod
    def copy(model: nn.Module) -> nn.Module:
        out = copy.deepcopy(model)
        return out.eval()


def _build(entry: Entry[type[OwnershipAttack[Any]]], options: Any) -> OwnershipAttack[Any]:
    return entry.obj(options)


OWNERSHIP_ATTACKS: Registry[type[OwnershipAttack[Any]]] = Registry(
    "ownership attack", plugins="trustflow.tasks.provenance.attacks", factory=_build
)


def make_attack(spec: str, **options: Any) -> OwnershipAttack[Any]:
    """The attack a spec (``"scale?low=0.1&high=10"``) names, ``options`` on top."""
    attack: OwnershipAttack[Any] = OWNERSHIP_ATTACKS.create(spec, **options)
    return attack


__all__ = [
    "OWNERSHIP_ATTACKS",
    "AttackContext",
    "AttackOptions",
    "OwnershipAttack",
    "TrainAttackOptions",
    "make_attack",
]
