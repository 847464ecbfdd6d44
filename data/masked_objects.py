"""Rows of the ``masked_objects`` stage: one image, one object, its exact mask.

Every input kind (COCO segmentations, image + mask files, boxes refined by GrabCut, the
generated set) ends in :func:`masked_table`, so the stage's invariants are checked in one
place: the image is RGB, the mask has the image's size and is not empty, and both are stored
as lossless PNG (a JPEG mask would not be exact). The object is never cropped: the whole
frame is kept, because the background and position editors need the context around it.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from PIL import Image

from trustflow.data.schemas import MASKED_OBJECTS
from trustflow.errors import InputError

GRABCUT_ITERATIONS = 8


@dataclass(frozen=True)
class MaskedRecord:
    """One row before encoding: pixels as arrays, provenance as text."""

    object_id: str
    label: str
    image: np.ndarray  # H×W×3 uint8
    mask: np.ndarray  # H×W bool
    mask_source: str  # coco-polygon|coco-rle|mask-file|grabcut|synthetic
    source: str
    box: tuple[float, float, float, float] | None = None


def encode_png(array: np.ndarray) -> bytes:
    """Lossless PNG of an RGB image or a mask (a bool mask is stored as 0/255)."""
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def decode_image(data: bytes) -> np.ndarray:
    """H×W×3 uint8 RGB from PNG (or any PIL format)."""
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


def decode_mask(data: bytes) -> np.ndarray:
    """H×W bool from a mask PNG (any non-zero pixel is the object)."""
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("L")) > 0


def check_record(rec: MaskedRecord) -> None:
    """The stage's invariants; an ``InputError`` naming the object's source otherwise."""
    h, w = rec.image.shape[:2]
    if rec.image.ndim != 3 or rec.image.shape[2] != 3 or rec.image.dtype != np.uint8:
        raise InputError(f"{rec.source}: image must be H×W×3 uint8 RGB, got {rec.image.shape} {rec.image.dtype}")
    if rec.mask.shape != (h, w):
        raise InputError(f"{rec.source}: mask is {rec.mask.shape[1]}x{rec.mask.shape[0]} but the image is {w}x{h}")
    if not rec.mask.any():
        raise InputError(f"{rec.source}: the object mask is empty (no pixel on the object)")
    if rec.mask.all():
        raise InputError(f"{rec.source}: the object mask covers the whole image (no background left to edit)")


def masked_table(records: Iterable[MaskedRecord]) -> pa.Table:
    """Check and encode records into a ``masked_objects`` table."""
    cols: dict[str, list] = {name: [] for name in MASKED_OBJECTS.names}
    for rec in records:
        check_record(rec)
        cols["object_id"].append(rec.object_id)
        cols["label"].append(rec.label)
        cols["width"].append(int(rec.image.shape[1]))
        cols["height"].append(int(rec.image.shape[0]))
        cols["image_png"].append(encode_png(rec.image))
        cols["mask_png"].append(encode_png(rec.mask.astype(bool)))
        cols["mask_source"].append(rec.mask_source)
        cols["box"].append(None if rec.box is None else [float(v) for v in rec.box])
        cols["source"].append(rec.source)
    return pa.table(cols, schema=MASKED_OBJECTS.schema)


def grabcut_mask(image: np.ndarray, box: tuple[float, float, float, float], where: str) -> np.ndarray:
    """Refine a box (x, y, w, h) into an object mask with OpenCV GrabCut.

    Deterministic: OpenCV's RNG (used by GrabCut's GMM initialisation) is seeded with 0
    first. Definite and probable foreground both count as the object. The box is checked
    against the image first (``where`` names the entry in errors)."""
    import cv2

    h, w = image.shape[:2]
    x, y, bw, bh = (round(float(v)) for v in box)
    if bw < 2 or bh < 2:
        raise InputError(f"{where}: box {list(box)} is smaller than 2x2 pixels")
    if x < 0 or y < 0 or x + bw > w or y + bh > h:
        raise InputError(f"{where}: box {list(box)} lies outside the {w}x{h} image")
    if bw >= w and bh >= h:
        raise InputError(f"{where}: box {list(box)} covers the whole image; GrabCut needs background outside it")
    labels = np.zeros((h, w), np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)
    bgr = np.ascontiguousarray(image[..., ::-1])
    cv2.grabCut(bgr, labels, (x, y, bw, bh), bgd, fgd, GRABCUT_ITERATIONS, cv2.GC_INIT_WITH_RECT)
    mask = (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)
    if not mask.any():
        raise InputError(f"{where}: GrabCut found no object inside box {list(box)}")
    return mask


__all__ = [
    "MaskedRecord",
    "check_record",
    "decode_image",
    "decode_mask",
    "encode_png",
    "grabcut_mask",
    "masked_table",
]
