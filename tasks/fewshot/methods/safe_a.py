"""SAFE-A: SAFE's blended feature with an adapter on top.

SAFE is fitted first (its α picked on validation for the prototype classifier), then the
adapter trains on the frozen blended feature: ``adapter=tip_adapter_f`` (default: the cache
model with trained keys, α/β searched again) or ``clip_adapter`` (the residual MLP).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from trustflow.tasks.fewshot.methods.base import FEWSHOT_METHODS, AdaptConfig, AdaptedModel, FewShotMethod, FewShotTask
from trustflow.tasks.fewshot.methods.clip_adapter import ClipAdapterOptions, fit_adapter
from trustflow.tasks.fewshot.methods.safe import SafeOptions, fit_safe
from trustflow.tasks.fewshot.methods.tip_adapter_f import TipAdapterFOptions, fit_cache


class SafeAOptions(SafeOptions):
    adapter: Literal["tip_adapter_f", "clip_adapter"] = "tip_adapter_f"
    adapter_lr: float = Field(default=1e-3, gt=0)


@FEWSHOT_METHODS.register("safe_a", options=SafeAOptions)
class SafeA(FewShotMethod[SafeAOptions]):
    def fit(self, task: FewShotTask, config: AdaptConfig) -> AdaptedModel:
        o = self.options
        blend, _, safe_info = fit_safe(task, config, SafeOptions(lr=o.lr, alphas=o.alphas, alpha=o.alpha))
        if o.adapter == "clip_adapter":
            head, history = fit_adapter(blend, task, config, ClipAdapterOptions(lr=o.adapter_lr))
            info = {"final_loss": history[-1] if history else None}
            self.info = {**{f"safe_{k}": v for k, v in safe_info.items()}, **info}
            return AdaptedModel(task.backbone.trunk, head, frozen_trunk=True)
        cache, info = fit_cache(blend, task, config, TipAdapterFOptions(lr=o.adapter_lr))
        self.info = {**{f"safe_{k}": v for k, v in safe_info.items()}, **info}
        return AdaptedModel(task.backbone.trunk, cache, frozen_trunk=True)
