"""Detector inference at scale on Ray Data, streamed to a resumable ``detections`` stage.

Why Ray Data: images are read from the dataset's Parquet parts in the store by Ray read
tasks, decoded and run through an actor pool per detector (each actor loads its model
once; ``num_gpus`` per actor on GPU clusters), with back-pressure between the stages, so
the same code runs 300 images on a laptop and a million on a cluster.

Resume: the stage is keyed by (detector, domain, split, image_id) and every image gets
exactly one row, also when the detector found nothing. Before a run, the keys already in
the stage's parts are removed from the input; the driver writes one atomic Parquet part per
``part_rows`` results as they stream in, so a killed run loses at most one unwritten part
and a re-run never duplicates rows.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field

from trustflow.data.schemas import DETECTIONS
from trustflow.data.store import ArtifactStore, StageRef, StageWriter
from trustflow.data.store.artifact_store import PARTS_DIR
from trustflow.progress import track

DETECTION_KEYS = ["detector", "domain", "split", "image_id"]


class InferenceConfig(BaseModel):
    """How one detector's pass over the images is spread over Ray."""

    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(8, ge=1, description="images per map_batches call")
    actors: int = Field(2, ge=1, description="actor pool size per detector")
    cpus_per_actor: float = Field(
        0.5,
        gt=0,
        description="0.5 leaves room for Ray Data's read tasks: a pool of 2 full-CPU actors on 2 CPUs deadlocks",
    )
    gpus_per_actor: float = Field(0.0, ge=0)
    threads_per_actor: int = Field(1, ge=1, description="torch / OpenCV threads inside each actor")
    part_rows: int = Field(64, ge=1, description="result rows per Parquet part written by the driver")


def decode_rgb(data: bytes) -> np.ndarray:
    """Encoded image bytes → H×W×3 uint8 RGB (grey and RGBA converted)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


class DetectBatch:
    """The Ray Data actor: loads the detector once, then maps image batches to result rows."""

    def __init__(self, spec: str, categories: dict[int, str], threads: int = 1) -> None:
        import torch

        from trustflow.models.detection import load_detector

        torch.set_num_threads(threads)
        try:
            import cv2

            cv2.setNumThreads(threads)
        except ImportError:  # OpenCV is only needed by the Haar backend
            pass
        self.spec = spec
        self.detector = load_detector(spec, categories)

    def __call__(self, batch: pa.Table) -> pa.Table:
        images = [decode_rgb(b) for b in batch.column("image_bytes").to_pylist()]
        t0 = time.perf_counter()
        results = self.detector.detect(images)
        per_image = (time.perf_counter() - t0) / max(1, len(images))
        return pa.table(
            {
                "detector": [self.spec] * len(images),
                "domain": batch.column("domain"),
                "split": batch.column("split"),
                "image_id": batch.column("image_id"),
                "category_ids": [[int(d.category_id) for d in dets] for dets in results],
                "boxes": [[[float(d.x), float(d.y), float(d.w), float(d.h)] for d in dets] for dets in results],
                "scores": [[float(d.score) for d in dets] for dets in results],
                "seconds": [per_image] * len(images),
            }
        )


def image_keys_of(table: pa.Table) -> pa.Array:
    """One string per row naming its image, ``domain\x1fsplit\x1fimage_id``: a vectorised
    key for set membership (``pc.is_in``) that keeps the rows' order, unlike a join."""
    return pc.binary_join_element_wise(table["domain"], table["split"], pc.cast(table["image_id"], pa.string()), "\x1f")


def drop_done(batch: pa.Table, done: pa.Array | None, domains: frozenset[str] | None) -> pa.Table:
    """A Ray Data filter stage: keeps images of the requested domains not yet in the stage.

    ``done``: ``image_keys_of`` the images already in the stage (None when there are none)."""
    if domains is not None:
        batch = batch.filter(pc.is_in(batch["domain"], pa.array(sorted(domains), pa.string())))
    if done is not None and len(done) and batch.num_rows:
        batch = batch.filter(pc.invert(pc.is_in(image_keys_of(batch), value_set=done)))
    return batch


@dataclass
class InferenceStats:
    detector: str
    images_total: int
    images_done_before: int
    images_run: int
    seconds: float

    @property
    def images_per_s(self) -> float | None:
        return self.images_run / self.seconds if self.images_run and self.seconds > 0 else None


def _done_keys(writer: StageWriter, detector: str) -> pa.Array | None:
    """``image_keys_of`` this detector's images already in the stage (an Arrow array: compact
    to ship to the filter tasks, ~30 bytes a key, where a set of tuples was ~200)."""
    keys = writer.existing_keys()
    if keys.num_rows == 0:
        return None
    mine = keys.filter(pc.equal(keys["detector"], detector))
    return image_keys_of(mine) if mine.num_rows else None


def run_detector(
    store: ArtifactStore,
    images_ref: StageRef,
    out_ref: StageRef,
    detector: str,
    categories: Mapping[int, str],
    domains: Sequence[str] | None,
    config: InferenceConfig,
    image_keys: pa.Table,
) -> InferenceStats:
    """Run one detector over the images of ``domains`` (all when None) not yet in ``out_ref``.

    ``image_keys`` (domain, split, image_id of every image) sizes the progress bar and the
    stats without reading image bytes in the driver.
    """
    import ray
    from ray.data import ActorPoolStrategy, DataContext

    from trustflow.models.detection import load_detector

    writer = StageWriter(store, out_ref, DETECTIONS, DETECTION_KEYS)
    done = _done_keys(writer, detector)
    wanted = frozenset(domains) if domains is not None else None
    keys = image_keys if wanted is None else image_keys.filter(pc.is_in(image_keys["domain"], pa.array(sorted(wanted))))
    total = keys.num_rows
    already = 0 if done is None else pc.sum(pc.is_in(image_keys_of(keys), value_set=done)).as_py() or 0
    todo = total - already
    if todo == 0:  # a finished detector is not even loaded: a resumed run costs a key scan
        return InferenceStats(detector, total, already, 0, 0.0)
    load_detector(detector, dict(categories))  # fail fast in the driver on a bad spec or label map

    DataContext.get_current().enable_progress_bars = False  # our own progress hook reports images
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # no execution-plan banners per detector
    manifest = store.require_manifest(images_ref)
    paths = [store.path(images_ref.relpath, PARTS_DIR, p.name) for p in manifest.parts]
    ds = ray.data.read_parquet(paths, filesystem=store.fs, columns=["domain", "split", "image_id", "image_bytes"])
    ds = ds.map_batches(partial(drop_done, done=done, domains=wanted), batch_format="pyarrow", num_cpus=0.25)
    # an ingested part holds up to 256 images and reads as one block, and a block goes to one
    # actor: split into blocks of 4 batches (streaming) so every actor of the pool gets work
    ds = ds.repartition(target_num_rows_per_block=4 * config.batch_size)
    ds = ds.map_batches(
        DetectBatch,
        fn_constructor_args=(detector, dict(categories), config.threads_per_actor),
        batch_size=config.batch_size,
        batch_format="pyarrow",
        compute=ActorPoolStrategy(size=config.actors),
        num_cpus=config.cpus_per_actor,
        num_gpus=config.gpus_per_actor or None,
    )
    pending: list[pa.Table] = []
    pending_rows = 0
    run = 0
    t0 = time.perf_counter()
    with track(f"detect {detector}", todo) as advance:
        for rows in ds.iter_batches(batch_format="pyarrow", batch_size=None):
            batch = cast(pa.Table, rows)  # batch_format="pyarrow": Ray's annotation is the union of all formats
            if batch.num_rows == 0:
                continue
            pending.append(batch)
            pending_rows += batch.num_rows
            if pending_rows >= config.part_rows:
                writer.write_part(pa.concat_tables(pending))
                run += pending_rows
                advance(pending_rows)
                pending, pending_rows = [], 0
        if pending:
            writer.write_part(pa.concat_tables(pending))
            run += pending_rows
            advance(pending_rows)
    return InferenceStats(detector, total, already, run, time.perf_counter() - t0)


def detections_to_coco(table: pa.Table) -> list[dict[str, Any]]:
    """Rows of the ``detections`` stage (one domain, one detector) → COCO result dicts."""
    out: list[dict[str, Any]] = []
    for image_id, cats, boxes, scores in zip(
        table["image_id"].to_pylist(),
        table["category_ids"].to_pylist(),
        table["boxes"].to_pylist(),
        table["scores"].to_pylist(),
        strict=True,
    ):
        for c, b, s in zip(cats, boxes, scores, strict=True):
            out.append(
                {"image_id": int(image_id), "category_id": int(c), "bbox": [float(v) for v in b], "score": float(s)}
            )
    return out
