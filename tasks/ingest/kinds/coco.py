"""Ingest a COCO-format set (or a COCO-O domain tree): images on Ray, annotations from JSON."""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

import pyarrow as pa

from trustflow import names
from trustflow.data.loaders.coco import CocoImage, OnInvalid, load_coco
from trustflow.data.loaders.images import read_image
from trustflow.data.schemas import COCO_ANNOTATIONS, COCO_CATEGORIES, COCO_IMAGES
from trustflow.data.store import ArtifactStore, Manifest
from trustflow.errors import InputError
from trustflow.registry import Options
from trustflow.tasks.ingest.common import INGESTERS, require_rows, stage_ref
from trustflow.tasks.ingest.staging import staged
from trustflow.tasks.ray_parts import Chunk, write_parts_on_ray

log = logging.getLogger(__name__)
IMAGES_PER_PART = 256
IMAGE_KEYS = ["domain", "split", "image_id"]
ANNOTATION_KEYS = ["domain", "split", "ann_id"]


def build_image_rows(payload: tuple[str, str, list[CocoImage]]) -> pa.Table:
    """Read, check and hash a chunk of images (runs in a Ray worker)."""
    domain, split, images = payload
    cols: dict[str, list] = {name: [] for name in COCO_IMAGES.names}
    for img in images:
        blob = read_image(img.path)
        if (blob.width, blob.height) != (img.width, img.height):
            raise InputError(
                f"{img.path}: image is {blob.width}x{blob.height} but the annotations say {img.width}x{img.height}"
            )
        cols["image_id"].append(img.image_id)
        cols["domain"].append(domain)
        cols["split"].append(split)
        cols["file_name"].append(img.file_name)
        cols["width"].append(img.width)
        cols["height"].append(img.height)
        cols["image_bytes"].append(blob.data)
        cols["sha256"].append(blob.sha256)
    return pa.table(cols, schema=COCO_IMAGES.schema)


def _safe_tag(text: str) -> str:
    """Domain/split names come from folder names: keep part ids to safe characters."""
    cleaned = re.sub(r"[^A-Za-z0-9_.=-]", "_", text)[:80]
    return cleaned if cleaned == text else f"{cleaned}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


class CocoOptions(Options):
    """``on_invalid``: ``error`` stops at the first bad entry; ``drop`` drops bad entries,
    counts them by reason and records the counts in the images manifest."""

    on_invalid: OnInvalid = "error"


@INGESTERS.register("coco", options=CocoOptions)
def ingest_coco(store: ArtifactStore, dataset_id: str, source: Path, options: CocoOptions) -> dict[str, Manifest]:
    on_invalid = options.on_invalid
    splits = load_coco(source, on_invalid)  # validates every annotation file before anything is written
    drops = {f"{s.domain or 'default'}/{s.split}": dict(s.drops) for s in splits if s.drops}
    if drops:
        total = sum(sum(d.values()) for d in drops.values())
        log.warning("%s: dropped %d invalid COCO entries (on_invalid=drop): %s", source, total, drops)
    if not any(s.images for s in splits):  # before anything is written: an empty set is no dataset
        files = ", ".join(str(s.json_path) for s in splits)
        reason = f" (every image was dropped: {drops})" if drops else ""
        raise InputError(f"{source}: no images in {files}{reason}; an empty dataset is not ingested")
    chunks: list[Chunk] = []
    for s in splits:
        tag = _safe_tag(f"{s.domain or 'default'}-{s.split}")
        for start in range(0, len(s.images), IMAGES_PER_PART):
            chunks.append(
                Chunk(
                    f"{tag}-{start // IMAGES_PER_PART:06d}",
                    (s.domain, s.split, s.images[start : start + IMAGES_PER_PART]),
                )
            )
    images_ref = stage_ref(dataset_id, names.IMAGES)
    stats = write_parts_on_ray(store, images_ref, COCO_IMAGES, IMAGE_KEYS, chunks, staged(build_image_rows))
    require_rows(stats, source, "images")
    domains = sorted({s.domain for s in splits})
    attrs = {"domains": domains, "splits": sorted({s.split for s in splits}), "on_invalid": on_invalid, "drops": drops}
    out = {names.IMAGES: store.writer(images_ref, COCO_IMAGES, IMAGE_KEYS).commit(attrs)}
    annotations = pa.concat_tables([s.annotations for s in splits if s.annotations is not None])
    out[names.ANNOTATIONS] = store.write_stage(
        stage_ref(dataset_id, names.ANNOTATIONS), COCO_ANNOTATIONS, annotations, ANNOTATION_KEYS, attrs
    )
    categories = splits[0].categories
    assert categories is not None
    out[names.CATEGORIES] = store.write_stage(
        stage_ref(dataset_id, names.CATEGORIES), COCO_CATEGORIES, categories, ["category_id"], attrs
    )
    return out
