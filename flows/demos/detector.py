"""Demo: MTCNN and Haar on a generated face set (exact boxes) and its 6 COCO-O style
domains, on Ray Data; COCO mAP per domain and effective robustness."""

from __future__ import annotations

from typing import Any

from prefect import flow

from trustflow.flows.demos.base import DEMO_PIPELINES, DemoContext

DEMO_DETECTORS = ["mtcnn", "haar"]
DEMO_FACE_IMAGES = 16  # × 7 domains (original + 6 COCO-O styles) × 2 detectors


@flow(name="demo-detectors", flow_run_name="demo-detectors")
def detector_demo(faces_dir: str) -> dict[str, Any]:
    """MTCNN and Haar on a generated face set and its 6 COCO-O style domains."""
    from trustflow.flows.detector_eval import detector_evaluate

    return detector_evaluate(source=faces_dir, detectors=DEMO_DETECTORS, domains="all", run_label="demo-faces")


@DEMO_PIPELINES.register("detector")
def detector_step(ctx: DemoContext) -> dict[str, Any]:
    from trustflow.data.store import ArtifactStore
    from trustflow.errors import ConfigError
    from trustflow.settings import load_settings
    from trustflow.tasks.ingest import existing_dataset

    if ctx.faces_dir is None:
        raise ConfigError("the detector demo needs the generated face set (cli/demo.py makes it)")
    detection = detector_demo(ctx.faces_dir)
    info = existing_dataset(ArtifactStore(ctx.store_url, load_settings()), detection["dataset_id"])
    return {"detectors": detection, "datasets": [info.as_dict()] if info is not None else []}
