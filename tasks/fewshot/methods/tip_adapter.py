"""Tip-Adapter style cache model (training-free).

Keys: the normalised support features F; values: their one-hot labels L. For a feature f:

    logits = scale · (f·Wᵀ + α · exp(−β (1 − f·Fᵀ)) · L)

W the fixed image prototypes (CLIP's text classifier in the original). α (residual weight)
and β (sharpness) are searched on the validation shots over ``alphas`` × ``betas``, as the
paper tunes them on its validation set. ``CacheHead`` and ``search`` are reused by
Tip-Adapter-F and SAFE-A.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from trustflow.registry import Options
from trustflow.tasks.fewshot.methods.base import (
    FEWSHOT_METHODS,
    AdaptConfig,
    AdaptedModel,
    FewShotMethod,
    FewShotTask,
    PoolFeatures,
    accuracy,
    frozen,
    l2n,
    pick,
    prototypes,
)

ALPHAS = (0.0, 0.1, 0.3, 1.0, 3.0)
BETAS = (1.0, 3.0, 5.5, 10.0)


class TipAdapterOptions(Options):
    alphas: tuple[float, ...] = Field(default=ALPHAS, min_length=1)
    betas: tuple[float, ...] = Field(default=BETAS, min_length=1)


class CacheHead(nn.Module):
    """featurize(map) → scale · (f·Wᵀ + α·exp(−β(1 − f·Kᵀ))·L); K trainable for Tip-Adapter-F."""

    weights: torch.Tensor
    values: torch.Tensor
    keys: torch.Tensor

    def __init__(
        self,
        featurize: nn.Module,
        weights: torch.Tensor,
        keys: torch.Tensor,
        labels: torch.Tensor,
        num_classes: int,
        scale: float,
        alpha: float = 1.0,
        beta: float = 1.0,
        train_keys: bool = False,
    ) -> None:
        super().__init__()
        self.featurize, self.scale, self.alpha, self.beta = featurize, float(scale), float(alpha), float(beta)
        self.register_buffer("weights", weights.clone())
        self.register_buffer("values", F.one_hot(labels, num_classes).float())
        if train_keys:
            self.keys = nn.Parameter(keys.clone())
        else:
            self.register_buffer("keys", keys.clone())

    def parts(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(prototype logits, cache affinity logits) of normalised features ``f``, unscaled."""
        affinity = torch.exp(-self.beta * (1 - f @ l2n(self.keys).T))
        return f @ self.weights.T, affinity @ self.values

    def logits_from_features(self, f: torch.Tensor) -> torch.Tensor:
        base, cache = self.parts(f)
        return self.scale * (base + self.alpha * cache)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return self.logits_from_features(self.featurize(maps))


def search(head: CacheHead, val_f: torch.Tensor, val_y: torch.Tensor, options: TipAdapterOptions) -> float:
    """Set ``head``'s (α, β) to the pair best on the validation features; returns that accuracy."""
    grid = [(a, b) for b in options.betas for a in options.alphas]

    def score(ab: tuple[float, float]) -> float:
        head.alpha, head.beta = ab
        with torch.no_grad():
            return accuracy(head.logits_from_features(val_f), val_y)

    (head.alpha, head.beta), best = pick(grid, score)
    return best


def cache_head(featurize: nn.Module, task: FewShotTask, config: AdaptConfig, train_keys: bool = False) -> CacheHead:
    """A cache head over ``featurize`` with the support shots as keys and values."""
    with torch.no_grad():
        feats = featurize(task.support_maps())
    weights = prototypes(feats, task.support_y, task.num_classes)
    return CacheHead(featurize, weights, feats, task.support_y, task.num_classes, config.scale, train_keys=train_keys)


@FEWSHOT_METHODS.register("tip_adapter", options=TipAdapterOptions)
class TipAdapter(FewShotMethod[TipAdapterOptions]):
    def fit(self, task: FewShotTask, config: AdaptConfig) -> AdaptedModel:
        featurize = frozen(PoolFeatures(task.backbone.pool))
        head = cache_head(featurize, task, config)
        with torch.no_grad():
            val_f = featurize(task.val_maps())
        val_acc = search(head, val_f, task.val_y, self.options)
        self.info = {"alpha": head.alpha, "beta": head.beta, "val_accuracy": val_acc}
        return AdaptedModel(task.backbone.trunk, head, frozen_trunk=True)
