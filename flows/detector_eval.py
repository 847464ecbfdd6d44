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
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from trustflow.data.schemas import DETECTION_METRICS, DETECTIONS, DETECTOR_LEADERBOARD
from trustflow.data.store import ArtifactStore, StageRef
from trustflow.errors import ConfigError, InputError
from trustflow.settings import load_settings
from trustflow.tasks.ingest import INGEST_FLOW, existing_dataset
from trustflow.tasks.ray_parts import StoreSpec

FLOW = "detector_evaluate"


def _digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]


@task(name="prepare-detection-dataset", cache_policy=NO_CACHE)
def prepare_dataset_task(spec: StoreSpec, source: str, domains: list[str], seed: int) -> dict[str, Any]:
    """The ingested dataset to evaluate on: an existing id, or a folder (shifted first when plain)."""
    from trustflow.data.loaders.coco import load_coco
    from trustflow.flows.ingest import ingest_flow
    from trustflow.tasks.detection.shifts.apply import make_shifted_set

    store = spec.open()
    info = existing_dataset(store, source) if not Path(source).exists() else None
    if info is not None:
        if info.kind != "coco":
            raise ConfigError(f"dataset {source} is a {info.kind} dataset, not a COCO-format one")
        return info.as_dict()
    root = Path(source)
    if not root.is_dir():
        raise InputError(f"{source}: neither an ingested dataset id nor a folder with a COCO-format set")
    splits = load_coco(root)  # validates before anything is generated
    if all(s.domain == "" for s in splits) and domains:
        out = store.settings.home_dir / "shifted" / f"{root.name}-{_digest([str(root.resolve()), domains, seed])}"
        make_shifted_set(root, out, domains, seed=seed)
        root = out
    return ingest_flow(source=str(root), kind="coco", store_url=store.url)


@task(name="detect", task_run_name="detect-{detector}", cache_policy=NO_CACHE)
def detect_task(
    spec: StoreSpec, dataset_id: str, detector: str, domains: list[str] | None, inference: dict[str, Any]
) -> dict[str, Any]:
    from trustflow.infra.ray_runtime import ensure_ray
    from trustflow.tasks.detection.inference import InferenceConfig, run_detector

    store = spec.open()
    ensure_ray(store.settings)
    images_ref = StageRef(INGEST_FLOW, dataset_id, "images")
    keys = store.read_table(images_ref, columns=["domain", "split", "image_id"])
    cats = store.read_table(StageRef(INGEST_FLOW, dataset_id, "categories"))
    categories = dict(zip(cats["category_id"].to_pylist(), cats["name"].to_pylist()))
    stats = run_detector(
        store, images_ref, detections_ref(dataset_id), detector, categories, domains, InferenceConfig(**inference), keys
    )
    return {
        "detector": detector,
        "images": stats.images_total,
        "resumed": stats.images_done_before,
        "ran": stats.images_run,
        "seconds": round(stats.seconds, 2),
        "images_per_s": stats.images_per_s,
    }


def detections_ref(dataset_id: str) -> StageRef:
    return StageRef(FLOW, f"infer-{dataset_id}", "detections")


@task(name="score-detections", cache_policy=NO_CACHE)
def score_task(
    spec: StoreSpec,
    dataset_id: str,
    run_id: str,
    detectors: list[str],
    domains: list[str] | None,
    id_domain: str,
    trend: str,
    a: float,
    b: float,
    throughput: dict[str, float | None],
    parallel: bool | None,
) -> dict[str, Any]:
    import pyarrow.compute as pc

    from trustflow.infra.ray_runtime import ensure_ray
    from trustflow.tasks.detection import plots
    from trustflow.tasks.detection.inference import DETECTION_KEYS
    from trustflow.tasks.detection.metrics import gt_from_tables
    from trustflow.tasks.detection.scoring import leaderboard, score_all

    store = spec.open()
    if parallel is not False:
        ensure_ray(store.settings)
    ref = detections_ref(dataset_id)
    store.writer(ref, DETECTIONS, DETECTION_KEYS).commit({"dataset_id": dataset_id})
    detections = store.read_table(ref, filter=pc.field("detector").isin(detectors))
    images = store.read_table(
        StageRef(INGEST_FLOW, dataset_id, "images"),
        columns=["image_id", "domain", "split", "file_name", "width", "height"],
    )
    annotations = store.read_table(StageRef(INGEST_FLOW, dataset_id, "annotations"))
    categories = store.read_table(StageRef(INGEST_FLOW, dataset_id, "categories"))
    present = sorted(set(images["domain"].to_pylist()))
    wanted = present if domains is None else [d for d in present if d in set(domains) | {id_domain}]
    gt = {d: gt_from_tables(images, annotations, categories, d) for d in wanted}
    t0 = time.perf_counter()
    metrics = score_all(gt, detections, detectors, parallel=parallel)
    scoring_s = time.perf_counter() - t0
    store.write_stage(
        StageRef(FLOW, run_id, "metrics"),
        DETECTION_METRICS,
        pa.Table.from_pylist(metrics, DETECTION_METRICS.schema),
        ["detector", "domain"],
        {"dataset_id": dataset_id},
    )
    board = leaderboard(metrics, id_domain, trend="fit" if trend == "fit" else "given", a=a, b=b, throughput=throughput)
    store.write_stage(
        StageRef(FLOW, run_id, "leaderboard"),
        DETECTOR_LEADERBOARD,
        pa.Table.from_pylist(board, DETECTOR_LEADERBOARD.schema),
        ["detector"],
        {"dataset_id": dataset_id},
    )
    store.write_bytes_atomic(store.path("runs", FLOW, run_id, "plots", "id_vs_ood.png"), plots.id_vs_ood_png(board))
    store.write_bytes_atomic(
        store.path("runs", FLOW, run_id, "plots", "per_domain.png"), plots.per_domain_png(metrics, id_domain)
    )
    return {"metrics": metrics, "leaderboard": board, "scoring_seconds": round(scoring_s, 2)}


def _markdown_row(r: dict[str, Any]) -> str:
    drop = "-" if r["relative_drop"] is None else f"{r['relative_drop']:.1%}"
    speed = "-" if r["images_per_s"] is None else f"{r['images_per_s']:.1f}"
    return f"| {r['detector']} | {r['id_map']:.3f} | {r['ood_map']:.3f} | {drop} | {r['effective_robustness']:+.3f} | {speed} |"


@flow(name=FLOW, flow_run_name="detect-{run_label}")
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
    from trustflow.tasks.detection.inference import InferenceConfig
    from trustflow.tasks.detection.shifts.apply import domain_dirname, expand_domains

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
    dataset_id = dataset["dataset_id"]
    selected = None  # None: every domain of an ingested dataset
    if not is_folder and domains not in ("all", ["all"]):
        selected = sorted({domain_dirname(d) for d in expand_domains(domains)} | {id_domain})
    elif is_folder:
        selected = sorted({domain_dirname(d) for d in shift_domains} | {id_domain})
    runs = [detect_task(spec, dataset_id, d, selected, inference_cfg) for d in detectors]
    throughput = {r["detector"]: r["images_per_s"] for r in runs}
    run_id = f"detect-{_digest([dataset_id, sorted(detectors), selected, id_domain, trend, trend_a, trend_b])}"
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
    board = scored["leaderboard"]
    create_table_artifact(
        key="detector-leaderboard",
        table=[
            {
                k: (round(v, 4) if isinstance(v, float) else v)
                for k, v in r.items()
                if k not in ("trend_a", "trend_b", "trend")
            }
            for r in board
        ],
        description=f"COCO-O style leaderboard on {dataset_id}",
    )
    create_markdown_artifact(
        key="detector-summary",
        markdown="\n".join(
            [
                f"# Detector robustness `{run_id}` on `{dataset_id}`",
                f"in-distribution domain `{id_domain}`; trend OOD = {board[0]['trend_a']:.3f} + {board[0]['trend_b']:.3f}·ID ({board[0]['trend']})"
                if board
                else "",
                "",
                "| detector | ID mAP | OOD mAP | relative drop | effective robustness | images/s |",
                "|---|---|---|---|---|---|",
                *[_markdown_row(r) for r in board],
                "",
                f"metrics: `{store.url}/runs/{FLOW}/{run_id}/metrics/`; plots: `{store.url}/runs/{FLOW}/{run_id}/plots/`",
            ]
        ),
    )
    return {"run_id": run_id, "dataset_id": dataset_id, "inference": runs, **scored}
