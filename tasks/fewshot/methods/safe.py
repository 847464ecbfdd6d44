"""SAFE: fine-tune only the attention-pooling layer, then blend with the original pooling.

What the paper's abstract fixes (arXiv 2311.04464): train the visual encoder's attention
pool on the few shots with the backbone frozen; at inference blend the feature pooled by the
fine-tuned layer with the one pooled by the original layer. What we chose (its full text could
not be read; docs/pipelines/fewshot.md):

* **Trained**: every parameter of a copy of the pool — positional embedding and the q, k, v
  and output projections. The trunk and the original pool are never touched (tested: bit
  identical), so the trunk's pre-pool maps are cached once and training is only the pool.
* **Objective**: cross-entropy of ``scale · normalise(f_ft) · Wᵀ`` on the support shots, W
  the fixed prototypes of the original features (CLIP's fixed text classifier here), AdamW,
  no weight decay (it would pull the identity projections towards zero).
* **Blend**: f = normalise(f_orig + α · f_ft) — the residual form, so α = 0 is exactly the
  unadapted model (tested) and α → ∞ the fine-tuned pool alone; α is picked on the validation
  shots from ``alphas`` (0 included: when tuning does not help on validation, SAFE falls back).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from trustflow.registry import Options
from trustflow.tasks.fewshot.methods.base import (
    FEWSHOT_METHODS,
    AdaptConfig,
    AdaptedModel,
    BlendFeatures,
    CosineHead,
    FewShotMethod,
    FewShotTask,
    accuracy,
    frozen,
    l2n,
    pick,
    prototypes,
    train_loop,
)

ALPHAS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)


class SafeOptions(Options):
    lr: float = Field(default=5e-4, gt=0)
    alphas: tuple[float, ...] = Field(default=ALPHAS, min_length=1)
    alpha: float | None = Field(default=None, ge=0)  # fixed α instead of the validation search


def fit_safe(
    task: FewShotTask, config: AdaptConfig, options: SafeOptions
) -> tuple[BlendFeatures, torch.Tensor, dict[str, Any]]:
    """Train a copy of the backbone's pool; returns the blend (α chosen), the prototypes W of
    the original features and what was chosen."""
    orig = frozen(task.backbone.pool)
    tuned = copy.deepcopy(orig).train()
    for p in tuned.parameters():
        p.requires_grad_(True)
    with torch.no_grad():
        weights = prototypes(orig(task.support_maps()), task.support_y, task.num_classes)

    def loss(b: np.ndarray) -> torch.Tensor:
        maps = task.cache.maps(task.support[b])  # cached: a lookup; uncached: the trunk again
        return F.cross_entropy(config.scale * l2n(tuned(maps)) @ weights.T, task.support_y[b])

    history = train_loop(list(tuned.parameters()), loss, len(task.support), config, options.lr)
    frozen(tuned)
    blend = BlendFeatures(orig, tuned, 0.0)
    val_maps = task.val_maps()

    def score(alpha: float) -> float:
        blend.alpha = alpha
        with torch.no_grad():
            return accuracy(blend(val_maps) @ weights.T, task.val_y)

    grid = [options.alpha] if options.alpha is not None else list(options.alphas)
    blend.alpha, val_acc = pick(grid, score)
    return (
        blend,
        weights,
        {"alpha": blend.alpha, "val_accuracy": val_acc, "final_loss": history[-1] if history else None},
    )


@FEWSHOT_METHODS.register("safe", options=SafeOptions)
class Safe(FewShotMethod[SafeOptions]):
    def fit(self, task: FewShotTask, config: AdaptConfig) -> AdaptedModel:
        blend, weights, self.info = fit_safe(task, config, self.options)
        return AdaptedModel(task.backbone.trunk, CosineHead(blend, weights, config.scale), frozen_trunk=True)
