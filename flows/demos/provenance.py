"""Demo: a short provenance trace. Two fingerprinted sources and one independent model
(small CNNs on Fashion-MNIST, trained in-process), descendants of each source made by
fine-tuning and by the combined attack (permute + scale + fine-tune on digits) at two
learning rates, then tracing by ρ and the two baselines: the ρ table and each method's
accuracy. About 2-3 minutes on 2 shared cores."""

from __future__ import annotations

from typing import Any

from prefect import flow

from trustflow.flows.demos.base import DEMO_PIPELINES, DemoContext

DEMO_EMBED: dict[str, Any] = {"dataset": "fashion-mnist", "epochs": 1, "limit": 2000, "layer": "net.3"}
DEMO_SOURCE_SEEDS = (0, 1)
DEMO_INDEPENDENT_SEED = 2  # trained the same way, never a source: it must trace to none
DEMO_ATTACKS = ["fine_tune?lr=0.1&limit=500", "combined?lr=0.01&limit=500", "combined?lr=0.1&limit=500"]


@flow(name="demo-provenance", flow_run_name="demo-provenance")
def provenance_demo() -> dict[str, Any]:
    """Embed, attack, trace; returns the trace flow's result."""
    from trustflow.flows.fingerprint_embed import fingerprint_embed
    from trustflow.flows.fingerprint_trace import fingerprint_trace

    seeds = [*DEMO_SOURCE_SEEDS, DEMO_INDEPENDENT_SEED]
    embedded = fingerprint_embed(seeds=seeds, **DEMO_EMBED)
    refs = dict(zip(seeds, embedded["sources"], strict=True))
    return fingerprint_trace(
        sources=[refs[s] for s in DEMO_SOURCE_SEEDS],
        independents=[refs[DEMO_INDEPENDENT_SEED]],
        attacks=DEMO_ATTACKS,
        probe_size=64,
    )


@DEMO_PIPELINES.register("provenance")
def provenance_step(ctx: DemoContext) -> dict[str, Any]:
    return {"provenance": provenance_demo()}
