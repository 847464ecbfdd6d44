"""Ingest a COCO-format set with segmentations as ``masked_objects`` (one object per row).

Which instances become rows (``select``):

* ``largest`` (default): per image, the largest non-crowd instance with a segmentation whose
  mask covers at least ``min_area`` of the frame. ImageNet-E edits *the* object of an image,
  and a classifier names one thing per image, so the dominant instance is the one a
  classification label fits; an image with no instance that large gives no row.
* ``all``: every such instance is its own row (the other instances stay in the picture as
  background).

The frame is never cropped: the editors need the context (backgrounds to inpaint, room to
move the object). Crowd annotations (``iscrowd``) and annotations without a segmentation are
never objects. Validation of the JSON (ids, boxes, paths) is the COCO loader's; malformed
polygons or RLE are an ``InputError`` naming the file and the annotation id.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
from pydantic import Field

from trustflow.data.loaders.coco import load_coco, segmentation_mask
from trustflow.data.loaders.images import read_image
from trustflow.data.masked_objects import MaskedRecord, decode_image, masked_table
from trustflow.data.schemas import MASKED_OBJECTS
from trustflow.data.store import ArtifactStore, Manifest
from trustflow.errors import InputError
from trustflow.registry import Options
from trustflow.tasks.ingest.common import INGESTERS, stage_ref, write_stage_on_ray
from trustflow.tasks.ray_parts import Chunk

IMAGES_PER_PART = 64
OBJECT_KEYS = ["object_id"]


class CocoMasksOptions(Options):
    """``select``: ``largest`` instance per image or ``all`` instances; ``min_area``: the
    smallest mask, as a fraction of the frame, that counts as an object."""

    select: Literal["largest", "all"] = "largest"
    min_area: float = Field(0.02, ge=0.0, lt=1.0)


# one image's work: (path, width, height, object-id prefix, [(ann_id, label, segmentation, where)])
ImageJob = tuple[Path, int, int, str, list[tuple[int, str, Any, str]]]


def build_masked_rows(payload: tuple[list[ImageJob], str, float]) -> pa.Table:
    """Decode the images and masks of a chunk and pick the objects (runs in a Ray worker)."""
    jobs, select, min_area = payload
    records: list[MaskedRecord] = []
    for path, width, height, prefix, anns in jobs:
        blob = read_image(path)
        if (blob.width, blob.height) != (width, height):
            raise InputError(f"{path}: image is {blob.width}x{blob.height} but the annotations say {width}x{height}")
        image = decode_image(blob.data)
        found = []
        for ann_id, label, seg, where in anns:
            mask, kind = segmentation_mask(seg, height, width, where)
            if mask.mean() >= min_area and mask.any() and not mask.all():
                found.append((int(mask.sum()), ann_id, label, mask, kind))
        if select == "largest":
            found = sorted(found, key=lambda f: (-f[0], f[1]))[:1]
        for _, ann_id, label, mask, kind in found:
            records.append(MaskedRecord(f"{prefix}-{ann_id}", label, image, mask, kind, str(path)))
    return masked_table(records)


@INGESTERS.register("coco-masks", options=CocoMasksOptions)
def ingest_coco_masks(
    store: ArtifactStore, dataset_id: str, source: Path, options: CocoMasksOptions
) -> dict[str, Manifest]:
    splits = load_coco(source, "error")
    chunks: list[Chunk] = []
    with_segmentation = 0
    for s in splits:
        assert s.annotations is not None and s.categories is not None
        names = dict(zip(s.categories["category_id"].to_pylist(), s.categories["name"].to_pylist(), strict=True))
        per_image: dict[int, list[tuple[int, str, Any, str]]] = {}
        anns = s.annotations.select(["ann_id", "image_id", "category_id", "iscrowd"]).to_pylist()
        for ann in anns:
            seg = s.segmentations.get(ann["ann_id"])
            if seg is None or ann["iscrowd"]:
                continue
            where = f"{s.json_path}: annotation id {ann['ann_id']}"
            per_image.setdefault(ann["image_id"], []).append((ann["ann_id"], names[ann["category_id"]], seg, where))
        with_segmentation += sum(len(v) for v in per_image.values())
        tag = "-".join(filter(None, (s.domain, s.split)))
        jobs: list[ImageJob] = [
            (img.path, img.width, img.height, f"{tag}-{img.image_id}", per_image[img.image_id])
            for img in s.images
            if img.image_id in per_image
        ]
        for start in range(0, len(jobs), IMAGES_PER_PART):
            part = f"{tag}-{start // IMAGES_PER_PART:06d}"
            chunks.append(Chunk(part, (jobs[start : start + IMAGES_PER_PART], options.select, options.min_area)))
    if not with_segmentation:
        files = ", ".join(str(s.json_path) for s in splits)
        raise InputError(f"{source}: no annotation with a 'segmentation' (polygons or RLE) in {files}")
    ref = stage_ref(dataset_id, MASKED_OBJECTS.name)
    manifest = write_stage_on_ray(
        store,
        ref,
        MASKED_OBJECTS,
        OBJECT_KEYS,
        chunks,
        build_masked_rows,
        source,
        f"objects covering >= {options.min_area:.0%} of their image",
        {"select": options.select, "min_area": options.min_area, "annotations_with_masks": with_segmentation},
    )
    return {MASKED_OBJECTS.name: manifest}


__all__ = ["CocoMasksOptions", "build_masked_rows", "ingest_coco_masks"]
