"""Ingest images with mask files beside them (``x.jpg`` + ``x.mask.png``) as ``masked_objects``.

Layout and checks: data/loaders/masked.py. The class folder is the label; the object id is
the image's path under the folder without its suffix (``cat/x``).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from trustflow.data.loaders.images import read_image
from trustflow.data.loaders.masked import MaskedFile, scan_maskfolder
from trustflow.data.masked_objects import MaskedRecord, decode_image, decode_mask, masked_table
from trustflow.data.schemas import MASKED_OBJECTS
from trustflow.data.store import ArtifactStore, Manifest
from trustflow.errors import InputError
from trustflow.registry import NoOptions
from trustflow.tasks.ingest.common import INGESTERS, stage_ref, write_stage_on_ray
from trustflow.tasks.ray_parts import chunked

OBJECTS_PER_PART = 128
OBJECT_KEYS = ["object_id"]


def build_maskfolder_rows(files: list[MaskedFile]) -> pa.Table:
    """Read each image and its mask (runs in a Ray worker); bad files name themselves."""
    records = []
    for f in files:
        assert f.mask is not None
        image = decode_image(read_image(f.image).data)
        try:
            mask = decode_mask(read_image(f.mask).data)
        except InputError as exc:
            raise InputError(f"mask of {f.image}: {exc}") from None
        if mask.shape != image.shape[:2]:
            raise InputError(
                f"{f.mask}: mask is {mask.shape[1]}x{mask.shape[0]} but its image is {image.shape[1]}x{image.shape[0]}"
            )
        records.append(MaskedRecord(f.object_id, f.label, image, mask, "mask-file", str(f.image)))
    return masked_table(records)


@INGESTERS.register("maskfolder")
def ingest_maskfolder(store: ArtifactStore, dataset_id: str, source: Path, options: NoOptions) -> dict[str, Manifest]:
    files = scan_maskfolder(source)
    chunks = chunked(files, OBJECTS_PER_PART, "masks")
    ref = stage_ref(dataset_id, MASKED_OBJECTS.name)
    manifest = write_stage_on_ray(
        store,
        ref,
        MASKED_OBJECTS,
        OBJECT_KEYS,
        chunks,
        build_maskfolder_rows,
        source,
        "masked objects",
        {"labels": sorted({f.label for f in files})},
    )
    return {MASKED_OBJECTS.name: manifest}
