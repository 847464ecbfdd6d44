"""Ingest an image-folder classification set: images read and hashed on Ray."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from trustflow import names
from trustflow.data.loaders.imagefolder import FolderImage, scan_imagefolder
from trustflow.data.loaders.images import read_image
from trustflow.data.schemas import IMAGEFOLDER_IMAGES
from trustflow.data.store import ArtifactStore, Manifest
from trustflow.registry import NoOptions
from trustflow.tasks.ingest.common import INGESTERS, stage_ref, write_stage_on_ray
from trustflow.tasks.ray_parts import Chunk

IMAGES_PER_PART = 512
IMAGE_KEYS = ["path"]


def build_folder_rows(payload: tuple[list[FolderImage], dict[str, int]]) -> pa.Table:
    images, label_ids = payload
    cols: dict[str, list] = {name: [] for name in IMAGEFOLDER_IMAGES.names}
    for img in images:
        blob = read_image(img.path)
        cols["path"].append(img.relpath)
        cols["split"].append(img.split)
        cols["label"].append(img.label)
        cols["label_id"].append(label_ids[img.label])
        cols["width"].append(blob.width)
        cols["height"].append(blob.height)
        cols["image_bytes"].append(blob.data)
        cols["sha256"].append(blob.sha256)
    return pa.table(cols, schema=IMAGEFOLDER_IMAGES.schema)


@INGESTERS.register("imagefolder")
def ingest_imagefolder(store: ArtifactStore, dataset_id: str, source: Path, options: NoOptions) -> dict[str, Manifest]:
    images, classes = scan_imagefolder(source)
    label_ids = {name: i for i, name in enumerate(classes)}
    chunks = [
        Chunk(f"{start // IMAGES_PER_PART:06d}", (images[start : start + IMAGES_PER_PART], label_ids))
        for start in range(0, len(images), IMAGES_PER_PART)
    ]
    ref = stage_ref(dataset_id, names.IMAGES)
    manifest = write_stage_on_ray(
        store,
        ref,
        IMAGEFOLDER_IMAGES,
        IMAGE_KEYS,
        chunks,
        build_folder_rows,
        source,
        "images",
        {"classes": classes, "splits": sorted({i.split for i in images})},
    )
    return {names.IMAGES: manifest}
