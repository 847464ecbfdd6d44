"""Classifiers on the original and every edited image: the predictions stage and its leaderboard.

One evaluation = edits (an ``attribute_edits`` stage) × classifiers (any spec the vision
registry accepts: ``mobilenet_v2?pretrained=true``, ``efficientnet_lite0?pretrained=true``,
``timm:NAME?weights=FILE``, ``ckpt:PATH``, ``run:<training run>``, ``torchscript:PATH``).

* **Class space.** A classifier with 1000 outputs is an ImageNet-1k classifier: its classes
  are ImageNet's names and the built-in groups apply (``models/vision/label_maps.py``).
  Any other classifier's classes are the dataset's labels sorted by name — the order
  ``imagefolder`` training gives them — and their count must match its outputs.
* **Input size.** ImageNet classifiers see the whole frame resized to 224×224 (no centre
  crop: a position edit may put the object near a border, and a crop would cut it away,
  measuring the crop instead of the edit); the others see ``image_size`` (default: the
  images as they are).
* **Predictions** (stage ``predictions``, key ``model|edit_id``): one Ray task per (model,
  shard of edits) through ``tasks/ray_parts.write_parts_on_ray``; each task reads its
  shard's images from the store itself (the driver ships only ids), keeps the loaded model
  per worker process, and writes one part. Chunks are named by their keys, so a re-run
  skips finished shards and anti-joins the rest: no row is ever written twice.
"""

from __future__ import annotations

import functools
import hashlib
import io
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from trustflow.data.schemas import ATTRIBUTE_EDITS, ATTRIBUTE_PREDICTIONS
from trustflow.data.store import ArtifactStore, StageRef
from trustflow.errors import ConfigError, InputError
from trustflow.models.vision.label_maps import IMAGENET_CLASSES, LabelMap, imagenet_classes
from trustflow.models.vision.resolve import PortableModel
from trustflow.models.vision.spec import CHECKPOINT, FILE_SCHEMES, RUN, classifier_spec, read_checkpoint, spec_file
from trustflow.tasks.ray_parts import Chunk, StoreSpec, chunked, write_parts_on_ray

IMAGENET_SIZE = 224
PRED_KEYS = ["pred_key"]
TOP_K = 5
IMAGENET_WEIGHTED = {"mobilenet_v2": "pretrained", "efficientnet_lite0": "pretrained", "timm": "weights"}


@dataclass(frozen=True)
class ModelPlan:
    """Everything a worker needs to evaluate one classifier: what to load, its classes, how
    dataset labels map onto them, and the input size."""

    label: str  # the spec as the user gave it (the ``model`` column)
    portable: PortableModel
    num_classes: int  # for building an architecture spec
    classes: tuple[str, ...]
    hits: dict[str, tuple[int, ...]]  # dataset label → classifier class indices
    image_size: int | None  # None: as stored
    unmapped: tuple[str, ...] = field(default=())

    @property
    def imagenet(self) -> bool:
        return self.num_classes == IMAGENET_CLASSES

    @property
    def tag(self) -> str:
        """A part-id-safe name of the model (parts are ``<tag>-<hash of keys>``)."""
        return "m" + hashlib.sha256(self.label.encode()).hexdigest()[:10]


def architecture_classes(spec: str, n_labels: int) -> int:
    """Outputs of a fresh architecture build: 1000 with ImageNet weights (``pretrained`` of
    mobilenet_v2 / efficientnet_lite0, ``weights=`` of timm), else one per dataset label."""
    parsed = classifier_spec(spec)
    option = IMAGENET_WEIGHTED.get(parsed.name)
    value = parsed.options.get(option) if option else None
    weighted = value not in (None, "", "false", "False", "0", False)
    return IMAGENET_CLASSES if weighted else n_labels


def _model_outputs(portable: PortableModel, n_labels: int) -> int:
    parsed = classifier_spec(portable.spec)
    if parsed.name == CHECKPOINT:  # the bytes travel in ``portable``: read them back from a local copy
        with portable.local_spec() as local:
            return int(read_checkpoint(spec_file(classifier_spec(local)), label=portable.source)["num_classes"])
    if parsed.name in FILE_SCHEMES:  # TorchScript: ask the module
        import torch

        with portable.local_spec() as spec:
            model = load_model(spec, None)
            with torch.no_grad():
                return int(model(torch.zeros(1, 3, IMAGENET_SIZE, IMAGENET_SIZE)).shape[1])
    return architecture_classes(portable.spec, n_labels)


def plan_model(
    store: ArtifactStore,
    spec: str,
    labels: Sequence[str],
    label_map: Mapping[str, Sequence[str | int]] | None = None,
    image_size: int | None = None,
    skip_unmapped: bool = False,
) -> ModelPlan:
    """Resolve ``spec`` (a missing or unsafe checkpoint fails here, named as the user knows
    it), find its class space and map the dataset ``labels`` onto it."""
    if classifier_spec(spec).name == RUN or classifier_spec(spec).name in FILE_SCHEMES:
        portable = PortableModel.of(store, spec)
    else:
        portable = PortableModel(spec, spec)
    dataset_classes = tuple(sorted(set(labels)))
    n = _model_outputs(portable, len(dataset_classes))
    imagenet = n == IMAGENET_CLASSES
    if imagenet:
        classes = imagenet_classes()
    elif n == len(dataset_classes):
        classes = dataset_classes
    else:
        raise ConfigError(
            f"model {spec!r} has {n} outputs; the edits have {len(dataset_classes)} labels "
            f"({', '.join(dataset_classes[:8])}{' …' if len(dataset_classes) > 8 else ''}) and it is not an "
            "ImageNet-1k classifier: evaluate it on edits of the classes it was trained on"
        )
    lm = LabelMap.build(dataset_classes, classes, label_map, imagenet=imagenet, skip_unmapped=skip_unmapped)
    size = IMAGENET_SIZE if imagenet else image_size
    return ModelPlan(
        spec, portable, n, tuple(classes), {k: tuple(sorted(v)) for k, v in lm.hits.items()}, size, lm.unmapped
    )


def load_model(spec: str, num_classes: int | None) -> Any:
    from trustflow.models.vision.spec import load_classifier

    return load_classifier(spec, num_classes=num_classes, in_channels=3)


_MODELS: dict[tuple[str, str], Any] = {}


def _cached_model(plan: ModelPlan) -> Any:
    """One loaded model per worker process and classifier (a worker handles many shards)."""
    key = (plan.label, hashlib.sha256(plan.portable.blob).hexdigest())
    if key not in _MODELS:
        if len(_MODELS) >= 2:
            _MODELS.clear()
        with plan.portable.local_spec() as spec:
            _MODELS[key] = load_model(spec, plan.num_classes)
    return _MODELS[key]


def decode_png(data: bytes) -> np.ndarray:
    """PNG bytes → H×W×3 uint8 RGB."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            return np.asarray(img.convert("RGB"))
    except Exception as exc:  # noqa: BLE001 - a bad image in the stage is the input's problem
        raise InputError(f"edited image is not a readable PNG ({type(exc).__name__}: {exc})") from None


def to_batch(images: Sequence[np.ndarray], size: int | None) -> Any:
    """uint8 RGB images → one float NCHW batch in [0, 1], each resized to ``size``² (bilinear,
    antialiased) when given; without a size all images must share one shape."""
    import torch
    import torch.nn.functional as F

    tensors = []
    for img in images:
        t = torch.from_numpy(np.array(img, dtype=np.uint8, copy=True)).permute(2, 0, 1)[None].float() / 255.0
        if size is not None and tuple(t.shape[-2:]) != (size, size):
            t = F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        tensors.append(t)
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) > 1:
        raise ConfigError(f"edited images differ in size ({sorted(shapes)[:3]}…): give an image_size to resize them")
    return torch.cat(tensors)


def predict(
    plan: ModelPlan, model: Any, rows: Sequence[Mapping[str, Any]], batch_size: int = 32
) -> list[dict[str, Any]]:
    """Prediction rows (schema ``attribute_predictions``) of ``model`` on edit rows that carry
    ``image_png``; the label map decides hits."""
    import torch

    out: list[dict[str, Any]] = []
    k = min(TOP_K, plan.num_classes)
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        images = [decode_png(r["image_png"]) for r in batch]
        x = to_batch(images, plan.image_size)
        with torch.no_grad():
            probs = model(x).float().softmax(dim=1)
        top_p, top_i = probs.topk(k, dim=1)
        for r, img, p, i in zip(batch, images, top_p.tolist(), top_i.tolist(), strict=True):
            hits = set(plan.hits[r["label"]])
            out.append(
                {
                    "pred_key": f"{plan.label}|{r['edit_id']}",
                    "model": plan.label,
                    "edit_id": r["edit_id"],
                    "object_id": r["object_id"],
                    "label": r["label"],
                    "attribute": r["attribute"],
                    "level": r["level"],
                    "value": float(r["value"]),
                    "top5": [plan.classes[j] for j in i],
                    "top5_prob": [float(v) for v in p],
                    "hit1": i[0] in hits,
                    "hit5": any(j in hits for j in i) if plan.num_classes >= TOP_K else None,
                    "image_size": int(plan.image_size or img.shape[0]),
                }
            )
    return out


def _edit_rows(store: ArtifactStore, edits: StageRef, edit_ids: Sequence[str]) -> list[dict[str, Any]]:
    import pyarrow.compute as pc

    columns = ["edit_id", "object_id", "label", "attribute", "level", "value", "image_png"]
    table = store.read_table(edits, columns=columns, filter=pc.field("edit_id").isin(list(edit_ids)))
    by_id = {r["edit_id"]: r for r in table.to_pylist()}
    return [by_id[e] for e in edit_ids if e in by_id]


def build_predictions(spec: StoreSpec, edits: StageRef, plans: Mapping[str, ModelPlan], payload: Any) -> pa.Table:
    """The builder of one chunk (in a Ray worker or in-process): one model, one edit shard."""
    import torch

    torch.set_num_threads(1)
    plan = plans[payload["model"]]
    rows = _edit_rows(spec.open(), edits, payload["edit_ids"])
    predicted = predict(plan, _cached_model(plan), rows)
    return pa.Table.from_pylist(predicted, schema=ATTRIBUTE_PREDICTIONS.schema)


def edit_index(store: ArtifactStore, edits: StageRef) -> pa.Table:
    """The edits' ids, objects, labels and attributes (no pixels); ``InputError`` when the
    stage is not an ``attribute_edits`` stage or has no original."""
    manifest = store.require_manifest(edits)
    if manifest.schema_name != ATTRIBUTE_EDITS.name:
        raise InputError(f"stage {edits} holds {manifest.schema_name}, not {ATTRIBUTE_EDITS.name}")
    table = store.read_table(edits, columns=["edit_id", "object_id", "label", "attribute", "level"])
    if table.num_rows == 0:
        raise InputError(f"stage {edits} has no edits")
    if "original" not in set(table["attribute"].to_pylist()):
        raise InputError(f"stage {edits} has no original images (editor 'original'): drops need them")
    return table


def _shard_payload(model: str, edit_ids: list[str]) -> dict[str, Any]:
    return {"model": model, "edit_ids": list(edit_ids)}


def prediction_chunks(
    store: ArtifactStore, preds: StageRef, index: pa.Table, plans: Sequence[ModelPlan], shard_size: int
) -> tuple[list[Chunk], dict[str, int]]:
    """(chunks still to predict, images skipped per model for unmapped labels)."""
    writer = store.writer(preds, ATTRIBUTE_PREDICTIONS, PRED_KEYS)
    rows = index.select(["edit_id", "label"]).to_pylist()
    chunks: list[Chunk] = []
    skipped: dict[str, int] = {}
    for plan in plans:
        mine = [r["edit_id"] for r in rows if r["label"] in plan.hits]
        skipped[plan.label] = len(rows) - len(mine)
        keyed = pa.table({"pred_key": [f"{plan.label}|{e}" for e in mine], "edit_id": mine})
        todo = sorted(writer.missing(keyed)["edit_id"].to_pylist())
        chunks += chunked(
            todo,
            shard_size,
            plan.tag,
            key=str,
            payload=functools.partial(_shard_payload, plan.label),
        )
    return chunks, skipped


def run_predictions(
    store: ArtifactStore,
    edits: StageRef,
    preds: StageRef,
    plans: Sequence[ModelPlan],
    shard_size: int = 64,
    parallel: bool = True,
) -> dict[str, Any]:
    """Predict every (model, edit) the stage lacks, then commit it; returns counts and time.

    ``parallel`` runs the chunks as Ray tasks (Ray must be up); otherwise one after the other
    in this process (the benchmark's loop, and small runs)."""
    if shard_size < 1:
        raise ConfigError(f"shard_size must be >= 1, got {shard_size}")
    index = edit_index(store, edits)
    chunks, skipped = prediction_chunks(store, preds, index, plans, shard_size)
    by_label = {p.label: p for p in plans}
    spec = StoreSpec.of(store)
    builder = functools.partial(build_predictions, spec, edits, by_label)
    t0 = time.perf_counter()
    if parallel:
        stats = write_parts_on_ray(store, preds, ATTRIBUTE_PREDICTIONS, PRED_KEYS, chunks, builder)
    else:
        stats = _write_in_process(store, preds, chunks, builder)
    seconds = time.perf_counter() - t0
    store.writer(preds, ATTRIBUTE_PREDICTIONS, PRED_KEYS).commit({"edits": str(edits)})
    return {**stats, "skipped": skipped, "seconds": round(seconds, 3), "edits": index.num_rows}


def _write_in_process(store: ArtifactStore, preds: StageRef, chunks: list[Chunk], builder: Any) -> dict[str, int]:
    from trustflow.tasks.ray_parts import plan_chunks

    writer, todo, stats = plan_chunks(store, preds, ATTRIBUTE_PREDICTIONS, PRED_KEYS, chunks)
    for chunk in todo:
        table = writer.missing(builder(chunk.payload))
        if table.num_rows:
            writer.write_part(table, chunk.part_id)
        stats["rows_written"] += table.num_rows
    return stats


def read_predictions(
    store: ArtifactStore, preds: StageRef, models: Sequence[str], edits: StageRef
) -> list[dict[str, Any]]:
    """The prediction rows of ``models`` on the edits of ``edits`` (the stage may hold more)."""
    import pyarrow.compute as pc

    ids = edit_index(store, edits)["edit_id"]
    table = store.read_table(
        preds,
        columns=[c for c in ATTRIBUTE_PREDICTIONS.names if c not in ("top5_prob",)],
        filter=pc.field("model").isin(list(models)) & pc.field("edit_id").isin(ids),
    )
    return table.to_pylist()


__all__ = [
    "IMAGENET_SIZE",
    "ModelPlan",
    "architecture_classes",
    "build_predictions",
    "decode_png",
    "edit_index",
    "plan_model",
    "predict",
    "read_predictions",
    "run_predictions",
    "to_batch",
]
