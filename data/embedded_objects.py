"""The embedded default objects: scikit-image's bundled photographs of ImageNet-1k classes.

Nothing can be downloaded here, but scikit-image ships a few photographs whose subject is an
ImageNet-1k class, so the project's ImageNet classifiers can be debugged on real pixels.
:func:`write_embedded_objects` writes them in the ``grabcut`` layout (PNG files plus
``boxes.json``); ``trustflow ingest --kind grabcut <folder>`` then refines each box into a
mask. The boxes were drawn by looking at the images and the GrabCut masks checked by eye
(a preview PNG): the espresso cup with its saucer, the rocket on its pad and the motorcycles
are clean; the cat's mask is close to its box (fur and wall have similar colours); the
motorcycle masks keep a little of the red crate behind the handlebar.

Labels are ImageNet-1k class names (``ALTERNATIVES`` lists the other classes a correct
prediction may name). Left out: ``astronaut`` (no ImageNet-1k class fits a portrait in a
space suit) and ``horse`` (scikit-image's horse is a binary silhouette, not a photograph,
so "sorrel" would not be a fair label).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class EmbeddedObject:
    name: str  # the file stem, also the object id
    label: str  # ImageNet-1k class name
    box: tuple[int, int, int, int]  # x, y, w, h around the object


EMBEDDED: tuple[EmbeddedObject, ...] = (
    EmbeddedObject("chelsea", "Egyptian cat", (0, 0, 372, 300)),
    EmbeddedObject("coffee", "espresso", (70, 10, 420, 385)),
    EmbeddedObject("rocket", "missile", (288, 120, 70, 290)),
    EmbeddedObject("motorcycle_left", "moped", (88, 88, 600, 365)),
    EmbeddedObject("motorcycle_right", "moped", (22, 88, 600, 365)),
)
ALTERNATIVES: dict[str, tuple[str, ...]] = {
    "Egyptian cat": ("tabby", "tiger cat"),
    "espresso": ("cup", "coffee mug"),
    "missile": ("projectile",),
    "moped": ("motor scooter",),
}


def embedded_image(name: str) -> np.ndarray:
    """The bundled photograph ``name`` as H×W×3 uint8 RGB."""
    import skimage.data

    if name in ("motorcycle_left", "motorcycle_right"):
        left, right, _ = skimage.data.stereo_motorcycle()
        return np.asarray(left if name == "motorcycle_left" else right, dtype=np.uint8)
    return np.asarray(getattr(skimage.data, name)(), dtype=np.uint8)[..., :3]


def write_embedded_objects(out_dir: Path) -> Path:
    """Write ``<out_dir>/<name>.png`` and ``<out_dir>/boxes.json`` (the ``grabcut`` layout)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for obj in EMBEDDED:
        Image.fromarray(embedded_image(obj.name)).save(out_dir / f"{obj.name}.png")
        entries.append({"id": obj.name, "file": f"{obj.name}.png", "label": obj.label, "box": list(obj.box)})
    tmp = out_dir / ".boxes.json.tmp"
    tmp.write_text(json.dumps(entries, indent=1))
    tmp.replace(out_dir / "boxes.json")
    return out_dir


__all__ = ["ALTERNATIVES", "EMBEDDED", "EmbeddedObject", "embedded_image", "write_embedded_objects"]
