"""Demo: ingest the S-Eval sample (when ``../shared/data/s-eval`` exists) and a small S-Eval
evaluation of SmolLM2-135M and Qwen2.5-1.5B judged by the default critic."""

from __future__ import annotations

from typing import Any

from trustflow.flows.demos.base import DEMO_PIPELINES, DemoContext

DEMO_TARGETS = ["pkg:smollm2-135m", "pkg:qwen2.5-1.5b"]
DEMO_CRITIC = "default"


@DEMO_PIPELINES.register("seval")
def seval_demo(ctx: DemoContext) -> dict[str, Any]:
    from trustflow.flows.ingest import ingest_flow
    from trustflow.flows.seval_evaluate import seval_evaluate

    landed = [ingest_flow(source=ctx.seval_dir, kind="seval", store_url=ctx.store_url)] if ctx.seval_dir else []
    suite = landed[0]["dataset_id"] if landed else "seed-suite"
    # one base prompt per (language, dimension), one attack variant each: minutes on 2 cores
    evaluation = seval_evaluate(
        targets=DEMO_TARGETS,
        critic=DEMO_CRITIC,
        suite=suite,
        langs=["zh", "en"],
        per_dimension=1,
        attacks_per_base=1,
        max_tokens=48,
        batch_size=8,
    )
    return {"datasets": landed, "seval": evaluation}
