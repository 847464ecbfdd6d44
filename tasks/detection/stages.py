"""Prefect tasks of the ``detector_evaluate`` flow; each launches one coarse piece of work.

1. ``prepare_dataset_task``: the dataset to evaluate on — an ingested COCO dataset id as is,
   or a local folder (a plain COCO set gets its shifted domains generated first into one
   COCO-O tree with the source as domain ``original``); the flow ingests a folder.
2. ``detect_task``: one detector over the dataset's images (Ray Data) into the shared,
   resumable ``runs/detector_evaluate/infer-<dataset id>/detections`` stage.
3. ``score_task``: COCO metrics per detector × domain, the leaderboard and its plots into
   ``runs/detector_evaluate/<run id>/{metrics,leaderboard,plots}``.

``publish_summary`` writes the Prefect table and markdown artifacts of a finished run.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from trustflow import names
from trustflow.data.schemas import DETECTION_METRICS, DETECTIONS, DETECTOR_LEADERBOARD
from trustflow.data.store import StageRef
from trustflow.errors import ConfigError, InputError
from trustflow.tasks.detection.scoring import BOARD_LABELS
from trustflow.tasks.ingest import existing_dataset
from trustflow.tasks.ray_parts import StoreSpec

FLOW = names.DETECTOR_EVALUATE


def digest(payload: Any) -> str:
    """12 hex digits of a JSON payload: same parameters → same folder or run id."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]


def detections_ref(dataset_id: str) -> StageRef:
    """The detections of every detector on one dataset, shared by all its evaluations."""
    return StageRef(FLOW, f"infer-{dataset_id}", names.DETECTIONS)


def _ingested(dataset_id: str, stage: str) -> StageRef:
    return StageRef(names.INGEST, dataset_id, stage)


@task(name="prepare-detection-dataset", cache_policy=NO_CACHE)
def prepare_dataset_task(spec: StoreSpec, source: str, domains: list[str], seed: int) -> dict[str, Any]:
    """An ingested COCO dataset's info (``dataset_id`` …), or ``{"folder": ...}`` to ingest:
    the source folder itself, or the shifted COCO-O tree generated from a plain set."""
    from trustflow.data.loaders.coco import load_coco
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
        out = store.settings.home_dir / "shifted" / f"{root.name}-{digest([str(root.resolve()), domains, seed])}"
        make_shifted_set(root, out, domains, seed=seed)
        root = out
    return {"folder": str(root)}


@task(name="detect", task_run_name="detect-{detector}", cache_policy=NO_CACHE)
def detect_task(
    spec: StoreSpec, dataset_id: str, detector: str, domains: list[str] | None, inference: dict[str, Any]
) -> dict[str, Any]:
    """Run one detector over the images of ``domains`` (all when None) not yet in the stage."""
    from trustflow.infra.ray_runtime import ensure_ray
    from trustflow.tasks.detection.inference import InferenceConfig, run_detector

    store = spec.open()
    ensure_ray(store.settings)
    images_ref = _ingested(dataset_id, names.IMAGES)
    keys = store.read_table(images_ref, columns=["domain", "split", "image_id"])
    cats = store.read_table(_ingested(dataset_id, names.CATEGORIES))
    categories = dict(zip(cats["category_id"].to_pylist(), cats["name"].to_pylist(), strict=True))
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
    """COCO metrics per (detector, domain), the leaderboard and its two plots, written to the run."""
    import pyarrow.compute as pc

    from trustflow.infra.ray_runtime import ensure_ray
    from trustflow.tasks.detection import plots
    from trustflow.tasks.detection.inference import DETECTION_KEYS
    from trustflow.tasks.detection.scoring import leaderboard, score_stored

    store = spec.open()
    if parallel is not False:
        ensure_ray(store.settings)
    ref = detections_ref(dataset_id)
    store.writer(ref, DETECTIONS, DETECTION_KEYS).commit({"dataset_id": dataset_id})
    images_ref = _ingested(dataset_id, names.IMAGES)
    domain_col = store.read_table(images_ref, columns=["domain"])["domain"]
    present = sorted(pc.unique(domain_col).to_pylist())
    del domain_col
    wanted = present if domains is None else [d for d in present if d in set(domains) | {id_domain}]
    t0 = time.perf_counter()
    metrics = score_stored(
        spec,
        ref,
        images_ref,
        _ingested(dataset_id, names.ANNOTATIONS),
        _ingested(dataset_id, names.CATEGORIES),
        detectors,
        wanted,
        parallel=parallel,
    )
    scoring_s = time.perf_counter() - t0
    store.write_stage(
        StageRef(FLOW, run_id, names.METRICS),
        DETECTION_METRICS,
        pa.Table.from_pylist(metrics, DETECTION_METRICS.schema),
        ["detector", "domain"],
        {"dataset_id": dataset_id},
    )
    board = leaderboard(metrics, id_domain, trend="fit" if trend == "fit" else "given", a=a, b=b, throughput=throughput)
    store.write_stage(
        StageRef(FLOW, run_id, names.LEADERBOARD),
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


MARKDOWN_COLUMNS = ("detector", "id_map", "ood_map", "relative_drop", "effective_robustness", "images_per_s")


def _markdown_row(r: dict[str, Any]) -> str:
    drop = "-" if r["relative_drop"] is None else f"{r['relative_drop']:.1%}"
    speed = "-" if r["images_per_s"] is None else f"{r['images_per_s']:.1f}"
    return f"| {r['detector']} | {r['id_map']:.3f} | {r['ood_map']:.3f} | {drop} | {r['effective_robustness']:+.3f} | {speed} |"


def publish_summary(store_url: str, run_id: str, dataset_id: str, id_domain: str, board: list[dict[str, Any]]) -> None:
    """The run's Prefect UI artifacts: the leaderboard table and a markdown summary."""
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
    trend = (
        f"in-distribution domain `{id_domain}`; trend OOD = {board[0]['trend_a']:.3f} + "
        f"{board[0]['trend_b']:.3f}·ID ({board[0]['trend']})"
        if board
        else ""
    )
    create_markdown_artifact(
        key="detector-summary",
        markdown="\n".join(
            [
                f"# Detector robustness `{run_id}` on `{dataset_id}`",
                trend,
                "",
                "| " + " | ".join(BOARD_LABELS[c] for c in MARKDOWN_COLUMNS) + " |",
                "|" + "---|" * len(MARKDOWN_COLUMNS),
                *[_markdown_row(r) for r in board],
                "",
                f"metrics: `{store_url}/runs/{FLOW}/{run_id}/{names.METRICS}/`; "
                f"plots: `{store_url}/runs/{FLOW}/{run_id}/plots/`",
            ]
        ),
    )


__all__ = [
    "FLOW",
    "detect_task",
    "detections_ref",
    "digest",
    "prepare_dataset_task",
    "publish_summary",
    "score_task",
]
