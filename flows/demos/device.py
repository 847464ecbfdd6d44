"""Demo: cryogenic device-model fits (issue 20). The synthetic lab's Gummel sweeps of one SOI
lateral BJT (4, 77, 300 K; V_sub 0, 3, 6 V) written as a CSV, ingested as ``gummel`` and
fitted with the 4 K model and the Gummel–Poon baseline on Ray. Not in the default set."""

from __future__ import annotations

from typing import Any

from trustflow.flows.demos.base import DEMO_PIPELINES, DemoContext


@DEMO_PIPELINES.register("device")
def device_step(ctx: DemoContext) -> dict[str, Any]:
    from trustflow.flows.device import demo_device

    return {"device": demo_device()}
