"""The main job on embedded defaults: real object storage, real ingestion, printed results.

``trustflow demo`` (``cli/demo.py``) starts the local SeaweedFS (unless ``--local`` or a store
URL is configured), then runs ``demo_flow``, which runs the chosen pipelines of the demo
registry (``flows/demos/``, one module per pipeline), each on small embedded inputs so the
whole job fits in minutes on 2 cores:

* ``seval``: ingestion of the S-Eval sample from ``../shared/data/s-eval`` when it exists (the
  project never copies S-Eval's prompts into its tree) and a small S-Eval evaluation of
  SmolLM2-135M and Qwen2.5-1.5B (offline, from their pip packages) judged by the default
  critic (a probe on Qwen2.5-1.5B's hidden states);
* ``robust-vision``: standard vs FGSM-LAW training on digits (Ray Train, 2 workers), each
  best checkpoint attacked with FGSM and PGD-10;
* ``detector``: a face set generated with exact boxes, its 6 COCO-O style domains, MTCNN and
  Haar on Ray Data, COCO mAP per domain and effective robustness;
* ``provenance`` (not in the default set): two fingerprinted sources, their attacked
  descendants (fine-tune, combined) and an independent model traced by ρ and two baselines.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from trustflow.flows.demos.base import DEFAULT_PIPELINES, DEMO_PIPELINES, DemoContext, select_pipelines

__all__ = ["DEFAULT_PIPELINES", "demo_flow"]


@flow(name="demo", flow_run_name="demo")
def demo_flow(
    seval_dir: str | None,
    faces_dir: str | None,
    store_url: str,
    pipelines: list[str] | None = None,
) -> dict[str, Any]:
    """Run the chosen demo pipelines (default: seval, robust-vision, detector) in order;
    returns each one's result under its own key and the datasets that landed."""
    ctx = DemoContext(store_url=store_url, seval_dir=seval_dir, faces_dir=faces_dir)
    out: dict[str, Any] = {"datasets": [], "pipelines": []}
    for name in select_pipelines(pipelines):
        result = dict(DEMO_PIPELINES.get(name)(ctx))
        out["datasets"] += result.pop("datasets", [])
        out.update(result)
        out["pipelines"].append(name)
    return out
