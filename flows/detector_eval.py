"""``detector_evaluate``: many detectors × in-distribution and shifted domains, COCO-O style.

1. **Dataset**: ``source`` is an ingested COCO dataset id (``coco-…``) or a local folder. A
   plain COCO set gets its shifted domains generated first (``tasks.detection.shifts``: the
   6 COCO-O styles by default, or COCO-C corruptions) into one COCO-O tree with the source
   as domain ``original``; a COCO-O tree is ingested as is. Ingestion validates and is
   idempotent (same bytes → same dataset id).
2. **Inference** (Ray Data, one actor pool per detector) into
   ``runs/detector_evaluate/infer-<dataset id>/detections``: keyed by (detector, domain,
   split, image), shared by every evaluation of that dataset, so a re-run or a run with
   one more detector only computes what is missing.
3. **Scoring** (one Ray task per detector × domain, faster-coco-eval) and the leaderboard
   (ID mAP, OOD mAP, relative drop, effective robustness) into
   ``runs/detector_evaluate/<run id>/{metrics,leaderboard}`` plus PNG plots, a Prefect
   table artifact and a markdown summary.

The stages are in ``tasks/detection/stages.py``; this flow only composes them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow

from trustflow import names
from trustflow.data.store import ArtifactStore
from trustflow.errors import ConfigError
from trustflow.flows.ingest import ingest_flow
from trustflow.settings import load_settings
from trustflow.tasks.detection.inference import InferenceConfig
from trustflow.tasks.detection.shifts.apply import domain_dirname, expand_domains
from trustflow.tasks.detection.stages import detect_task, digest, prepare_dataset_task, publish_summary, score_task
from trustflow.tasks.ray_parts import StoreSpec


@flow(name=names.DETECTOR_EVALUATE, flow_run_name="detect-{run_label}")
def detector_evaluate(
    source: str,
    detectors: list[str],
    domains: list[str] | str = "all",
    id_domain: str = "original",
    seed: int = 0,
    trend: str = "given",
    trend_a: float = 0.0,
    trend_b: float = 0.45,
    inference: dict[str, Any] | None = None,
    parallel_scoring: bool | None = None,
    run_label: str = "coco-o",
) -> dict[str, Any]:
    """Evaluate ``detectors`` on ``source`` and its shifted ``domains``; returns the leaderboard.

    ``domains``: "all" (the 6 COCO-O styles), "coco-c", "coco-c:<severity>", or a list of
    domain names; for an ingested COCO-O dataset they select which of its domains to score.
    """
    if not detectors:
        raise ConfigError("detectors: give at least one detector spec (e.g. mtcnn, haar)")
    if trend not in ("given", "fit"):
        raise ConfigError(f"trend must be 'given' or 'fit', got {trend!r}")
    inference_cfg = InferenceConfig(**(inference or {})).model_dump()
    settings = load_settings()
    store = ArtifactStore(settings.effective_store_url, settings)
    spec = StoreSpec.of(store)
    is_folder = Path(source).is_dir()
    shift_domains = expand_domains(domains) if is_folder else []
    dataset = prepare_dataset_task(spec, source, shift_domains, seed)
    if "folder" in dataset:
        dataset = ingest_flow(source=dataset["folder"], kind="coco", store_url=store.url)
    dataset_id = dataset["dataset_id"]
    selected = None  # None: every domain of an ingested dataset
    if not is_folder and domains not in ("all", ["all"]):
        selected = sorted({domain_dirname(d) for d in expand_domains(domains)} | {id_domain})
    elif is_folder:
        selected = sorted({domain_dirname(d) for d in shift_domains} | {id_domain})
    runs = [detect_task(spec, dataset_id, d, selected, inference_cfg) for d in detectors]
    throughput = {r["detector"]: r["images_per_s"] for r in runs}
    run_id = f"detect-{digest([dataset_id, sorted(detectors), selected, id_domain, trend, trend_a, trend_b])}"
    scored = score_task(
        spec,
        dataset_id,
        run_id,
        list(detectors),
        selected,
        id_domain,
        trend,
        trend_a,
        trend_b,
        throughput,
        parallel_scoring,
    )
    publish_summary(store.url, run_id, dataset_id, id_domain, scored["leaderboard"])
    return {"run_id": run_id, "dataset_id": dataset_id, "inference": runs, **scored}
