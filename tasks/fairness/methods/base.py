"""The fairness-method contract and registry.

A method is one module in this package with ``@FAIRNESS_METHODS.register("<name>", options=...)``
on a ``FairnessMethod`` subclass. The training loop (``tasks/fairness/train.fit``) calls, in order:
``prepare(data)`` (e.g. add counterfactual copies), ``setup(classifier, data, config)`` (build
the ``FairModel`` and the optimizers), ``step(model, batch)`` per batch, and ``finish(...)``
after the last epoch (e.g. INLP's projection). Keeping the whole update in ``step`` is what
lets the same method run in one process or on each Ray Train worker.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import torch
from pydantic import Field
from torch import nn

from trustflow.models.text.encoder import TextClassifier
from trustflow.registry import Entry, Options, Registry
from trustflow.tasks.fairness.data import TextData
from trustflow.tasks.fairness.model import FairModel


class TrainConfig(Options):
    """What every method's training shares (its own knobs are its ``Options``)."""

    epochs: int = Field(default=2, ge=0)
    batch_size: int = Field(default=32, ge=2)
    lr: float = Field(default=5e-5, gt=0)  # encoder
    head_lr: float = Field(default=1e-3, gt=0)  # head, generator, discriminators
    weight_decay: float = Field(default=0.01, ge=0)
    trainable_layers: int | None = Field(default=None, ge=0)  # None: all encoder layers
    max_steps: int | None = Field(default=None, ge=1)  # smoke runs and time-boxed benchmarks
    seed: int = 0


@dataclass
class Batch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    y: torch.Tensor
    z: torch.Tensor


Tokenize = Callable[[list[str]], dict[str, torch.Tensor]]
OptionsT = TypeVar("OptionsT", bound=Options)


def main_optimizer(model: nn.Module, config: TrainConfig, extra: tuple[nn.Module, ...] = ()) -> torch.optim.Optimizer:
    """AdamW: encoder parameters at ``lr``, everything else (head, generator, extras) at ``head_lr``."""
    enc: list[nn.Parameter] = []
    rest: list[nn.Parameter] = []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (enc if name.startswith("classifier.encoder.") else rest).append(p)
    for module in extra:
        rest += [p for p in module.parameters() if p.requires_grad]
    groups = [{"params": enc, "lr": config.lr}, {"params": rest, "lr": config.head_lr}]
    return torch.optim.AdamW([g for g in groups if g["params"]], weight_decay=config.weight_decay)


class FairnessMethod(ABC, Generic[OptionsT]):
    """One debiasing method (options validated by the registry)."""

    name: ClassVar[str]
    Options: ClassVar[type[Options]]

    def __init__(self, options: OptionsT) -> None:
        self.options = options
        self.config = TrainConfig()
        self.optimizer: torch.optim.Optimizer | None = None

    def prepare(self, data: TextData) -> TextData:
        """The training data this method trains on (default: unchanged)."""
        return data

    def setup(self, classifier: TextClassifier, data: TextData, config: TrainConfig) -> FairModel:
        """Build the model and optimizers (default: classifier alone, one AdamW)."""
        self.config = config
        model = FairModel(classifier)
        self.optimizer = main_optimizer(model, config)
        return model

    @abstractmethod
    def step(self, model: FairModel, batch: Batch) -> dict[str, float]:
        """One update on ``batch``; returns the losses to log."""

    def finish(self, model: FairModel, data: TextData, tokenize: Tokenize) -> FairModel:
        """After the last epoch (default: nothing)."""
        return model

    def modules(self) -> dict[str, nn.Module]:
        """Extra trained parts worth saving (discriminators), by name."""
        return {}


def _build(entry: Entry[type[FairnessMethod[Any]]], options: Any) -> FairnessMethod[Any]:
    return entry.obj(options)


FAIRNESS_METHODS: Registry[type[FairnessMethod[Any]]] = Registry(
    "fairness method", plugins="trustflow.tasks.fairness.methods", factory=_build
)


def task_loss(model: FairModel, batch: Batch) -> torch.Tensor:
    return nn.functional.cross_entropy(model(batch.input_ids, batch.attention_mask), batch.y)
