"""Demo: few-shot adaptation and its robustness cost (issue 18). Prototype, linear probe,
Tip-Adapter-F and SAFE on scikit-learn digits at k = 1, 4 with two seeds, on the packaged
EfficientNet-Lite0 with its attention-pool head; FGSM/PGD and two corruptions against the
unadapted backbone. Not in the default set (a few minutes on 2 cores)."""

from __future__ import annotations

from typing import Any

from trustflow.flows.demos.base import DEMO_PIPELINES, DemoContext


@DEMO_PIPELINES.register("fewshot")
def fewshot_step(ctx: DemoContext) -> dict[str, Any]:
    from trustflow.flows.fewshot import demo_fewshot

    return {"fewshot": demo_fewshot()}
