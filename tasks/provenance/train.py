"""Training with a fingerprint: any training method of ``tasks/robustness/training`` plus the
anti-overwriting term as the loop's ``extra_loss`` (not a fork of any method).

``train_classifier`` is the single-process loop the attacks (fine-tune, overwrite) and the
benchmark use; ``FingerprintObjective`` is what a Ray Train worker passes to
``train_one_epoch`` to train a fingerprinted model with any method.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trustflow.data.vision.datasets import ArrayDataset
from trustflow.errors import ConfigError
from trustflow.models.fingerprint.module import FingerprintOptions, anti_overwrite_loss, pseudo_class
from trustflow.tasks.robustness.training import make_method
from trustflow.tasks.robustness.training.base import TrainState
from trustflow.tasks.robustness.training.loop import PerStepLR, lr_schedule, train_one_epoch


class FingerprintObjective:
    """``λ · CE(f(x; W+ε), pseudo-class)`` as an ``ExtraLoss`` of the training loop.

    Its noise frequencies come from its own generator, so adding it does not change the
    random starts of the method it is combined with."""

    def __init__(self, weight: float = 5e-4, seed: int = 0) -> None:
        if weight < 0:
            raise ConfigError(f"anti-overwriting weight must be >= 0, got {weight}")
        self.weight = float(weight)
        self.generator = torch.Generator().manual_seed(int(seed))

    @classmethod
    def for_model(cls, model: nn.Module, seed: int = 0) -> FingerprintObjective | None:
        """The objective a fingerprinted model asks for (None without pseudo-class / λ = 0)."""
        inner = getattr(model, "module", model)
        opts: FingerprintOptions | None = getattr(inner, "fingerprint_options", None)
        if opts is None or opts.anti_overwrite <= 0 or pseudo_class(inner) is None:
            return None
        return cls(opts.anti_overwrite, seed)

    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, state: TrainState
    ) -> tuple[torch.Tensor, dict[str, float]]:
        term = anti_overwrite_loss(model, x, self.generator)
        return self.weight * term, {"anti_overwrite": float(term.detach())}


def match_channels(data: ArrayDataset, in_channels: int) -> np.ndarray:
    """``data.x`` with the model's channel count: grey → RGB by repetition, RGB → grey by mean."""
    x = data.x
    if x.shape[1] == in_channels:
        return x
    if x.shape[1] == 1:
        return np.ascontiguousarray(np.repeat(x, in_channels, axis=1))
    if in_channels == 1:
        return np.ascontiguousarray(x.mean(axis=1, keepdims=True))
    raise ConfigError(f"cannot map {x.shape[1]}-channel images to a {in_channels}-channel model")


def train_classifier(
    model: nn.Module,
    data: ArrayDataset,
    *,
    epochs: int = 1,
    lr: float = 0.05,
    batch_size: int = 128,
    method: str = "standard",
    method_options: dict[str, Any] | None = None,
    fingerprint: bool = True,
    seed: int = 0,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    max_steps: int | None = None,
    schedule: str = "piecewise",
) -> list[dict[str, float]]:
    """Train ``model`` in place on ``data`` (SGD, per-step LR schedule); one metrics dict per
    epoch. ``method`` is any training-method spec; with ``fingerprint`` and a fingerprinted
    model the anti-overwriting term is added to every step."""
    torch.manual_seed(seed)
    in_channels = int(getattr(model, "in_channels", data.in_channels))
    x = torch.from_numpy(match_channels(data, in_channels))
    y = torch.from_numpy(data.y)
    g = torch.Generator().manual_seed(seed)
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True, generator=g)
    trainer = make_method(method, **(method_options or {}))
    state = trainer.init_state(model, seed=seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    steps = max(1, min(len(loader), max_steps or len(loader)))
    scheduler = PerStepLR(optimizer, lr_schedule(schedule, epochs, lr), steps)
    extra = FingerprintObjective.for_model(model, seed) if fingerprint else None
    history = []
    for _ in range(epochs):
        history.append(
            train_one_epoch(
                model, trainer, loader, optimizer, scheduler.step, state, "cpu", max_steps=max_steps, extra_loss=extra
            )
        )
    model.eval()
    return history


@torch.no_grad()
def accuracy(model: nn.Module, data: ArrayDataset, batch_size: int = 512) -> float:
    """Top-1 accuracy over all of the model's outputs (a predicted pseudo-class counts as wrong)."""
    model.eval()
    x = torch.from_numpy(match_channels(data, int(getattr(model, "in_channels", data.in_channels))))
    y = torch.from_numpy(data.y)
    correct = 0
    for i in range(0, len(y), batch_size):
        correct += int((model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum())
    return correct / max(1, len(y))


__all__ = ["FingerprintObjective", "accuracy", "match_channels", "train_classifier"]
