"""A small, deterministic COCO-format detection set drawn from scratch (no downloads).

Used by the demo and the tests: flat shapes (square, disc, triangle) on textured
backgrounds, with exact boxes, so detectors and metrics have real ground truth.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CATEGORIES = [
    {"id": 1, "name": "square", "supercategory": "shape"},
    {"id": 2, "name": "disc", "supercategory": "shape"},
    {"id": 3, "name": "triangle", "supercategory": "shape"},
]


def make_synthetic_coco(
    out_dir: Path, n_images: int = 24, seed: int = 0, size: tuple[int, int] = (160, 120), split: str = "val"
) -> Path:
    """Write ``<out_dir>/<split>/*.png`` and ``<out_dir>/annotations/instances_<split>.json``."""
    rng = np.random.default_rng(seed)
    width, height = size
    image_dir = out_dir / split
    image_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "annotations").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    ann_id = 1
    for image_id in range(1, n_images + 1):
        base = rng.integers(40, 200, size=3)
        noise = rng.integers(-25, 25, size=(height, width, 3))
        pixels = np.clip(base + noise, 0, 255).astype(np.uint8)
        img = Image.fromarray(pixels, "RGB")
        draw = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(1, 4))):
            cat = CATEGORIES[int(rng.integers(0, len(CATEGORIES)))]
            w, h = int(rng.integers(16, width // 2)), int(rng.integers(16, height // 2))
            x, y = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
            colour = tuple(int(c) for c in rng.integers(0, 255, size=3))
            if cat["name"] == "square":
                draw.rectangle([x, y, x + w - 1, y + h - 1], fill=colour)
            elif cat["name"] == "disc":
                draw.ellipse([x, y, x + w - 1, y + h - 1], fill=colour)
            else:
                draw.polygon([(x, y + h - 1), (x + w - 1, y + h - 1), (x + w // 2, y)], fill=colour)
            annotations.append(
                {
                    "id": ann_id,
                    "image_id": image_id,
                    "category_id": cat["id"],
                    "bbox": [x, y, w, h],
                    "area": float(w * h),
                    "iscrowd": 0,
                }
            )
            ann_id += 1
        name = f"{image_id:06d}.png"
        img.save(image_dir / name)
        images.append({"id": image_id, "file_name": name, "width": width, "height": height})
    doc = {"images": images, "annotations": annotations, "categories": CATEGORIES}
    (out_dir / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))
    return out_dir
