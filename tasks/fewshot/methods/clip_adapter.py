"""CLIP-Adapter style residual MLP on the frozen pooled feature.

f' = normalise(r · A(f) + (1 − r) · f) with A a two-layer bottleneck MLP (dim → dim/4 → dim,
ReLU after each, as CLIP-Adapter), classified by the fixed image prototypes (CLIP's text
classifier in the original). Only A trains; ``ratio`` r = 0.2 is CLIP-Adapter's default for
generic datasets. ``Adapter`` is reused by SAFE-A on the blended feature.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from trustflow.registry import Options
from trustflow.tasks.fewshot.methods.base import (
    FEWSHOT_METHODS,
    AdaptConfig,
    AdaptedModel,
    CosineHead,
    FewShotMethod,
    FewShotTask,
    PoolFeatures,
    frozen,
    l2n,
    prototypes,
    train_loop,
)


class ClipAdapterOptions(Options):
    ratio: float = Field(default=0.2, ge=0.0, le=1.0)
    reduction: int = Field(default=4, ge=1)
    lr: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=1e-4, ge=0)


class Adapter(nn.Module):
    """featurize(map) → normalise(r·MLP(f) + (1 − r)·f)."""

    def __init__(self, featurize: nn.Module, dim: int, ratio: float, reduction: int) -> None:
        super().__init__()
        self.featurize, self.ratio = featurize, float(ratio)
        hidden = max(1, dim // reduction)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden, bias=False), nn.ReLU(), nn.Linear(hidden, dim, bias=False), nn.ReLU()
        )

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        f = self.featurize(maps)
        return l2n(self.ratio * self.mlp(f) + (1 - self.ratio) * f)


def fit_adapter(
    featurize: nn.Module, task: FewShotTask, config: AdaptConfig, options: ClipAdapterOptions
) -> tuple[CosineHead, list[float]]:
    """Train an ``Adapter`` over ``featurize`` (kept frozen) on the support shots; the
    prototypes are those of ``featurize``'s support features."""
    maps = task.support_maps()
    with torch.no_grad():
        feats = featurize(maps)
    weights = prototypes(feats, task.support_y, task.num_classes)
    # the frozen featurizer runs once: the adapter trains on its (cached) output
    adapter = Adapter(nn.Identity(), feats.shape[1], options.ratio, options.reduction)
    torch.manual_seed(config.seed)
    for m in adapter.mlp:
        if isinstance(m, nn.Linear):
            m.reset_parameters()

    def loss(b: np.ndarray) -> torch.Tensor:
        return F.cross_entropy(config.scale * adapter(feats[b]) @ weights.T, task.support_y[b])

    history = train_loop(list(adapter.parameters()), loss, len(feats), config, options.lr, options.weight_decay)
    adapter.featurize = featurize
    return CosineHead(adapter, weights, config.scale), history


@FEWSHOT_METHODS.register("clip_adapter", options=ClipAdapterOptions)
class ClipAdapter(FewShotMethod[ClipAdapterOptions]):
    def fit(self, task: FewShotTask, config: AdaptConfig) -> AdaptedModel:
        head, history = fit_adapter(frozen(PoolFeatures(task.backbone.pool)), task, config, self.options)
        self.info = {"final_loss": history[-1] if history else None}
        return AdaptedModel(task.backbone.trunk, head, frozen_trunk=True)
