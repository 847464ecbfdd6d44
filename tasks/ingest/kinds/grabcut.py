"""Ingest images with object boxes, refined into masks by OpenCV GrabCut (``masked_objects``).

Layout (``boxes.json``) and checks: data/loaders/masked.py; the refinement is
data/masked_objects.grabcut_mask (deterministic). Each row records ``mask_source=grabcut``
and the ``box`` it came from, so a report can tell approximate masks from exact ones.
The embedded default (data/embedded_objects.py) writes this layout.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from trustflow.data.loaders.images import read_image
from trustflow.data.loaders.masked import MaskedFile, scan_boxes
from trustflow.data.masked_objects import MaskedRecord, decode_image, grabcut_mask, masked_table
from trustflow.data.schemas import MASKED_OBJECTS
from trustflow.data.store import ArtifactStore, Manifest
from trustflow.registry import NoOptions
from trustflow.tasks.ingest.common import INGESTERS, stage_ref, write_stage_on_ray
from trustflow.tasks.ray_parts import chunked

OBJECTS_PER_PART = 16  # GrabCut takes ~0.1-1 s per image: small parts spread the work
OBJECT_KEYS = ["object_id"]


def build_grabcut_rows(files: list[MaskedFile]) -> pa.Table:
    """GrabCut each box into a mask (runs in a Ray worker)."""
    records = []
    for f in files:
        assert f.box is not None
        image = decode_image(read_image(f.image).data)
        mask = grabcut_mask(image, f.box, f"{f.image} (object {f.object_id!r})")
        records.append(MaskedRecord(f.object_id, f.label, image, mask, "grabcut", str(f.image), f.box))
    return masked_table(records)


@INGESTERS.register("grabcut")
def ingest_grabcut(store: ArtifactStore, dataset_id: str, source: Path, options: NoOptions) -> dict[str, Manifest]:
    files = scan_boxes(source)
    chunks = chunked(files, OBJECTS_PER_PART, "grabcut")
    ref = stage_ref(dataset_id, MASKED_OBJECTS.name)
    manifest = write_stage_on_ray(
        store,
        ref,
        MASKED_OBJECTS,
        OBJECT_KEYS,
        chunks,
        build_grabcut_rows,
        source,
        "boxed objects",
        {"labels": sorted({f.label for f in files})},
    )
    return {MASKED_OBJECTS.name: manifest}
