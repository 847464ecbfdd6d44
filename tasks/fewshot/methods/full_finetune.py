"""Full fine-tuning: trunk, pool and class weights all trained on the support images.

The upper/overfitting reference. A copy of the backbone trains end to end (AdamW, ``lr``)
with a cosine head whose weights start at the prototypes; batch-norm statistics stay frozen
(eval mode: a few shots per batch would wreck the running means). It cannot use cached maps,
so it is by far the slowest method; ``epochs`` overrides the shared count for it alone.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

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
    prototypes,
    train_loop,
)


class FullFinetuneOptions(Options):
    lr: float = Field(default=1e-4, gt=0)
    weight_decay: float = Field(default=1e-4, ge=0)
    epochs: int | None = Field(default=None, ge=0)


@FEWSHOT_METHODS.register("full_finetune", options=FullFinetuneOptions)
class FullFinetune(FewShotMethod[FullFinetuneOptions]):
    def fit(self, task: FewShotTask, config: AdaptConfig) -> AdaptedModel:
        trunk = copy.deepcopy(task.backbone.trunk).eval()
        pool = copy.deepcopy(task.backbone.pool).eval()
        with torch.no_grad():
            weights = prototypes(pool(task.support_maps()), task.support_y, task.num_classes)
        head = CosineHead(PoolFeatures(pool), weights, config.scale, train_weights=True)
        model = AdaptedModel(trunk, head, frozen_trunk=False)
        for p in model.parameters():
            p.requires_grad_(True)

        def loss(b: np.ndarray) -> torch.Tensor:
            return F.cross_entropy(model(task.images(task.support[b])), task.support_y[b])

        history = train_loop(
            list(model.parameters()),
            loss,
            len(task.support),
            config,
            self.options.lr,
            self.options.weight_decay,
            epochs=self.options.epochs,
        )
        self.info = {"final_loss": history[-1] if history else None}
        frozen(model)
        return model
