"""Prefect tasks of the ``attribute_robustness`` flow; each does one step through the store.

1. ``make_edits_task``: the edits of a ``masked_objects`` dataset (``dataset_edits.py``) →
   an ``attribute_edits`` stage.
2. ``train_dataset_task``: a training set for the project's own classifiers — a dataset
   spec as ``trustflow train`` takes it, or ``stage:<flow>/<run>/<stage>`` (any stage with
   ``label`` and ``image_png``, e.g. ``masked_objects``) written out as an image folder.
3. ``predict_task``: every classifier on every edit → the shared, resumable
   ``runs/attribute_robustness/infer-<digest>/predictions`` stage (key ``model|edit_id``;
   the digest covers the edits, image size and label map, which change predictions).
4. ``score_task``: the leaderboard (``runs/attribute_robustness/<run id>/leaderboard``) and
   its plot.

``publish_summary`` writes the Prefect table and markdown artifacts of a finished run.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from trustflow import names
from trustflow.data.schemas import ATTRIBUTE_LEADERBOARD
from trustflow.data.store import ArtifactStore, StageRef
from trustflow.errors import ConfigError, InputError
from trustflow.tasks.ray_parts import StoreSpec

FLOW = names.ATTRIBUTE_ROBUSTNESS
STAGE_PREFIX = "stage:"


def digest(payload: Any) -> str:
    """12 hex digits of a JSON payload: same parameters → same run id."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]


def stage_ref(text: str, default_stage: str = names.EDITS) -> StageRef:
    """``flow/run/stage`` → that stage; a bare run id → ``attribute_robustness/<run>/<default_stage>``."""
    parts = text.removeprefix(STAGE_PREFIX).strip("/").split("/")
    if len(parts) == 3:
        return StageRef(*parts)
    if len(parts) == 1 and parts[0]:
        return StageRef(FLOW, parts[0], default_stage)
    raise ConfigError(f"{text!r}: name a stage as <flow>/<run id>/<stage>, or an {FLOW} run id")


def predictions_ref(edits: StageRef, image_sizes: dict[str, int | None], label_map: dict[str, list[str]]) -> StageRef:
    return StageRef(FLOW, f"infer-{digest([str(edits), sorted(image_sizes.items()), label_map])}", names.PREDICTIONS)


@task(name="make-attribute-edits", cache_policy=NO_CACHE)
def make_edits_task(spec: StoreSpec, objects: str, editors: list[str], seed: int) -> str:
    """Edit the ``objects`` dataset with ``editors`` (resumable; an existing stage is reused);
    returns the edits stage as ``flow/run/stage``."""
    from trustflow.tasks.attributes.dataset_edits import edit_dataset

    return str(edit_dataset(spec.open(), objects, editors, seed))


def export_imagefolder(store: ArtifactStore, ref: StageRef, root: Path, attribute: str = "original") -> Path:
    """Write a stage's images as ``root/<label>/<id>.png`` (an ``imagefolder:`` dataset).

    Any stage with ``label`` and ``image_png`` works: ``masked_objects`` (every row) or
    ``attribute_edits`` (only rows of ``attribute``, the originals by default)."""
    import pyarrow.compute as pc

    columns = set(store.dataset(ref).schema.names)
    if not {"label", "image_png"} <= columns:
        raise InputError(f"stage {ref} has no label/image_png columns: it cannot be a training set")
    key = "edit_id" if "edit_id" in columns else "object_id"
    flt = pc.field("attribute") == attribute if "attribute" in columns else None
    table = store.read_table(ref, columns=[key, "label", "image_png"], filter=flt)
    if table.num_rows == 0:
        raise InputError(f"stage {ref} has no images to train on")
    for r in table.to_pylist():
        folder = root / str(r["label"]).replace("/", "_")
        folder.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256(str(r[key]).encode()).hexdigest()[:16]
        (folder / f"{name}.png").write_bytes(r["image_png"])
    return root


@task(name="attribute-train-dataset", cache_policy=NO_CACHE)
def train_dataset_task(spec: StoreSpec, dataset: str) -> str:
    """A dataset spec ``trustflow train`` accepts: as given, or a stage exported to an image folder."""
    if not dataset.startswith(STAGE_PREFIX):
        return dataset
    store = spec.open()
    ref = stage_ref(dataset)
    root = store.settings.home_dir / "attribute-train" / digest([store.url, str(ref)])
    if not root.is_dir():
        tmp = root.with_name(root.name + ".tmp")
        export_imagefolder(store, ref, tmp)
        tmp.rename(root)
    return f"imagefolder:{root}"


@task(name="attribute-predict", cache_policy=NO_CACHE)
def predict_task(
    spec: StoreSpec,
    edits: str,
    models: list[str],
    image_sizes: dict[str, int | None],
    label_map: dict[str, list[str]],
    skip_unmapped: bool,
    shard_size: int,
    parallel: bool = True,
) -> dict[str, Any]:
    """Every model on every edit the predictions stage lacks (Ray over model × edit shard)."""
    from trustflow.infra.ray_runtime import ensure_ray
    from trustflow.tasks.attributes.evaluate import edit_index, plan_model, run_predictions

    store = spec.open()
    ref = stage_ref(edits)
    labels = sorted(set(edit_index(store, ref)["label"].to_pylist()))
    plans = [plan_model(store, m, labels, label_map, image_sizes.get(m), skip_unmapped=skip_unmapped) for m in models]
    if parallel:
        ensure_ray(store.settings)
    preds = predictions_ref(ref, image_sizes, label_map)
    stats = run_predictions(store, ref, preds, plans, shard_size=shard_size, parallel=parallel)
    unmapped = {p.label: list(p.unmapped) for p in plans if p.unmapped}
    return {"predictions": str(preds), "unmapped": unmapped, **stats}


@task(name="attribute-score", cache_policy=NO_CACHE)
def score_task(
    spec: StoreSpec,
    edits: str,
    predictions: str,
    run_id: str,
    models: list[str],
    skipped: dict[str, int],
    n_boot: int,
    seed: int,
) -> list[dict[str, Any]]:
    """The leaderboard stage and its plot for ``models`` on ``edits``."""
    from trustflow.tasks.attributes import plots
    from trustflow.tasks.attributes.evaluate import read_predictions
    from trustflow.tasks.attributes.metrics import leaderboard

    store = spec.open()
    rows = read_predictions(store, stage_ref(predictions), models, stage_ref(edits))
    board = leaderboard(rows, skipped, n_boot=n_boot, seed=seed)
    store.write_stage(
        StageRef(FLOW, run_id, names.LEADERBOARD),
        ATTRIBUTE_LEADERBOARD,
        pa.Table.from_pylist(board, ATTRIBUTE_LEADERBOARD.schema),
        ["row_key"],
        {"edits": edits, "predictions": predictions, "models": models, "bootstrap": n_boot},
    )
    store.write_bytes_atomic(
        store.path("runs", FLOW, run_id, "plots", plots.ACCURACY_VS_LEVEL), plots.accuracy_vs_level(board)
    )
    return board


def publish_summary(store_url: str, run_id: str, edits: str, board: list[dict[str, Any]]) -> None:
    """The run's Prefect UI artifacts: the per-level table and the drop per model and attribute."""
    from trustflow.tasks.attributes.metrics import mean_drops

    create_table_artifact(
        key="attribute-leaderboard",
        table=[
            {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items() if k != "row_key"} for r in board
        ],
        description=f"attribute robustness on {edits}",
    )
    drops = mean_drops(board)
    attributes = sorted({a for per in drops.values() for a in per})
    lines = [
        f"# Attribute robustness `{run_id}` on `{edits}`",
        "top-1 drop vs the originals (same objects), pooled over levels:",
        "",
        "| model | " + " | ".join(attributes) + " |",
        "|---|" + "---|" * len(attributes),
        *[
            f"| {m} | " + " | ".join(f"{per.get(a, float('nan')):+.3f}" for a in attributes) + " |"
            for m, per in sorted(drops.items())
        ],
        "",
        f"leaderboard: `{store_url}/runs/{FLOW}/{run_id}/{names.LEADERBOARD}/`",
    ]
    create_markdown_artifact(key="attribute-summary", markdown="\n".join(lines))


__all__ = [
    "FLOW",
    "digest",
    "export_imagefolder",
    "make_edits_task",
    "predict_task",
    "predictions_ref",
    "publish_summary",
    "score_task",
    "stage_ref",
    "train_dataset_task",
]
