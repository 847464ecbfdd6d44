"""Test-only attribute edits: a tiny masked set (coloured shapes on noise) made here, so the
evaluation tests need nothing from the editors' code. ``flip`` is a test-only "edit"
(the image mirrored left-right, mask with it)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa

from trustflow.data.schemas import ATTRIBUTE_EDITS
from trustflow.data.store import ArtifactStore, StageRef
from trustflow.tasks.attributes.editors import EDITORS, MaskedObject

CLASSES = ("disc", "square", "triangle")
COLOURS = {"disc": (220, 40, 40), "square": (40, 200, 40), "triangle": (40, 60, 220)}


def png(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def make_object(label: str, index: int, size: int = 16, seed: int = 0) -> MaskedObject:
    """A coloured shape (its class) at a random place on a noisy grey background."""
    rng = np.random.default_rng([seed, index, CLASSES.index(label)])
    img = rng.integers(60, 120, size=(size, size, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:size, :size]
    r = size // 4
    cy, cx = rng.integers(r, size - r, size=2)
    if label == "disc":
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    elif label == "square":
        mask = (abs(yy - cy) <= r - 1) & (abs(xx - cx) <= r - 1)
    else:
        mask = (yy - cy >= -r) & (yy - cy <= r) & (abs(xx - cx) <= (yy - cy + r) // 2)
    img[mask] = COLOURS[label]
    return MaskedObject(f"{label}-{index:03d}", label, img, mask)


def objects(per_class: int, size: int = 16, seed: int = 0) -> list[MaskedObject]:
    return [make_object(c, i, size, seed) for c in CLASSES for i in range(per_class)]


def edit_rows(objs: list[MaskedObject], seed: int = 0) -> list[dict]:
    """The original (through the real ``original`` editor) and a left-right flip of each object."""
    editor = EDITORS.get("original")
    original = editor(editor.Options())
    rng = np.random.default_rng(seed)
    rows = []
    for obj in objs:
        res = original.edit(obj, "original", rng)
        for attribute, level, image, mask, value in (
            ("original", "original", res.image, res.mask, 0.0),
            ("flip", "1", obj.image[:, ::-1].copy(), obj.mask[:, ::-1].copy(), 1.0),
        ):
            rows.append(
                {
                    "edit_id": f"{obj.object_id}|{attribute}|{level}|{seed}",
                    "object_id": obj.object_id,
                    "label": obj.label,
                    "attribute": attribute,
                    "level": level,
                    "value": value,
                    "editor": attribute,
                    "seed": seed,
                    "image_png": png(image),
                    "mask_png": png(mask.astype(np.uint8) * 255),
                }
            )
    return rows


def write_edits(store: ArtifactStore, ref: StageRef, rows: list[dict]) -> StageRef:
    store.write_stage(ref, ATTRIBUTE_EDITS, pa.Table.from_pylist(rows, schema=ATTRIBUTE_EDITS.schema), ["edit_id"])
    return ref


def write_imagefolder(objs: list[MaskedObject], root: Path) -> Path:
    """The objects' original images as ``root/<label>/<object_id>.png`` (for training)."""
    for obj in objs:
        (root / obj.label).mkdir(parents=True, exist_ok=True)
        (root / obj.label / f"{obj.object_id}.png").write_bytes(png(obj.image))
    return root
