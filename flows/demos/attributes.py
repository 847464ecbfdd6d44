"""Demo: attribute robustness on the embedded default. The bundled scikit-image photos (cat,
espresso, missile, two mopeds; box → GrabCut mask), edited one attribute at a time
(background complexity, size, position, direction) and classified by MobileNetV2 and
EfficientNet-Lite0 with their real ImageNet weights: top-1 and the drop per attribute.
About 2 minutes on 2 cores (most of it GrabCut and model loading)."""

from __future__ import annotations

from typing import Any

from trustflow.flows.demos.base import DEMO_PIPELINES, DemoContext


@DEMO_PIPELINES.register("attributes")
def attributes_step(ctx: DemoContext) -> dict[str, Any]:
    from trustflow.flows.attribute_robustness import demo_attribute_robustness

    return {"attributes": demo_attribute_robustness()}
