"""Tip-Adapter-F: the cache model with its keys fine-tuned.

The keys start as the support features and train with cross-entropy on the support shots
(AdamW, ``lr``), α and β held at the values the training-free search picked; afterwards α, β
are searched again on the validation shots (as Tip-Adapter-F does). ``fit_cache`` is what
SAFE-A puts on top of SAFE's blended feature.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from trustflow.tasks.fewshot.methods.base import (
    FEWSHOT_METHODS,
    AdaptConfig,
    AdaptedModel,
    FewShotMethod,
    FewShotTask,
    PoolFeatures,
    frozen,
    train_loop,
)
from trustflow.tasks.fewshot.methods.tip_adapter import CacheHead, TipAdapterOptions, cache_head, search


class TipAdapterFOptions(TipAdapterOptions):
    lr: float = Field(default=1e-3, gt=0)


def fit_cache(
    featurize: nn.Module, task: FewShotTask, config: AdaptConfig, options: TipAdapterFOptions
) -> tuple[CacheHead, dict[str, Any]]:
    """Tip-Adapter-F over a frozen ``featurize``: search, train the keys, search again."""
    head = cache_head(featurize, task, config, train_keys=True)
    with torch.no_grad():
        feats = featurize(task.support_maps())
        val_f = featurize(task.val_maps())
    search(head, val_f, task.val_y, options)
    if head.alpha == 0.0:  # keys would get no gradient; train them at the smallest non-zero α
        head.alpha = min([a for a in options.alphas if a > 0], default=1.0)

    def loss(b: np.ndarray) -> torch.Tensor:
        return F.cross_entropy(head.logits_from_features(feats[b]), task.support_y[b])

    history = train_loop([head.keys], loss, len(feats), config, options.lr)
    val_acc = search(head, val_f, task.val_y, options)
    return head, {
        "alpha": head.alpha,
        "beta": head.beta,
        "val_accuracy": val_acc,
        "final_loss": history[-1] if history else None,
    }


@FEWSHOT_METHODS.register("tip_adapter_f", options=TipAdapterFOptions)
class TipAdapterF(FewShotMethod[TipAdapterFOptions]):
    def fit(self, task: FewShotTask, config: AdaptConfig) -> AdaptedModel:
        head, self.info = fit_cache(frozen(PoolFeatures(task.backbone.pool)), task, config, self.options)
        return AdaptedModel(task.backbone.trunk, head, frozen_trunk=True)
