"""Nearest class mean of the frozen backbone's pooled features (the unadapted reference).

The image-feature stand-in for CLIP's zero-shot classifier (no text tower here): the class
weights are the normalised means of the support features, nothing is trained. It is also the
"unadapted backbone" every robustness delta is measured against.
"""

from __future__ import annotations

from trustflow.registry import NoOptions
from trustflow.tasks.fewshot.methods.base import (
    FEWSHOT_METHODS,
    AdaptConfig,
    AdaptedModel,
    CosineHead,
    FewShotMethod,
    FewShotTask,
    PoolFeatures,
    prototypes,
)


@FEWSHOT_METHODS.register("prototype", options=NoOptions)
class Prototype(FewShotMethod[NoOptions]):
    def fit(self, task: FewShotTask, config: AdaptConfig) -> AdaptedModel:
        featurize = PoolFeatures(task.backbone.pool)
        weights = prototypes(task.backbone.pool(task.support_maps()).detach(), task.support_y, task.num_classes)
        return AdaptedModel(task.backbone.trunk, CosineHead(featurize, weights, config.scale), frozen_trunk=True)
