"""A COCO-format face detection set built offline with exact ground truth.

Why: the detector-robustness demo and tests need real detectors (MTCNN, Haar) on real faces
with boxes that are right by construction, and no dataset can be downloaded here. Faces are
the 100 face crops of scikit-image's ``lfw_subset()`` (25×25 grey, tight crops from Labeled
Faces in the Wild); they are upscaled (bicubic) to 44–110 px, tinted with a skin tone and
pasted onto crops of scikit-image / scikit-learn sample photographs (coffee, rocket, brick,
grass, gravel, coins, the Hubble deep field, China, a flower, …). The pasted square is the
annotated box, so the ground truth is exact: detectors that draw boxes from brow to chin
score IoU ≈ 0.7 with it (good at AP50, partial at AP75), which is how real annotation
conventions differ too. Each image also gets 0–1 of ``lfw_subset``'s non-face crops as a
distractor (not annotated), so false positives are possible.

Deterministic for a seed; faces in one image do not overlap.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

CATEGORIES = [{"id": 1, "name": "face", "supercategory": "person"}]
_BACKGROUNDS = (
    "coffee",
    "rocket",
    "brick",
    "grass",
    "gravel",
    "coins",
    "hubble_deep_field",
    "immunohistochemistry",
    "horse",
    "clock",
    "camera",
    "moon",
)
_SKIN_TONES = np.array(
    [[1.0, 0.86, 0.74], [0.96, 0.80, 0.66], [0.88, 0.70, 0.55], [0.72, 0.53, 0.40], [0.55, 0.40, 0.30], [1.0, 1.0, 1.0]]
)


def _backgrounds() -> list[np.ndarray]:
    """Sample photographs shipped with scikit-image and scikit-learn, as RGB uint8."""
    import skimage.data
    from sklearn.datasets import load_sample_images

    out = []
    for name in _BACKGROUNDS:
        img = np.asarray(getattr(skimage.data, name)())
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        out.append(img[..., :3].astype(np.uint8))
    out.extend(np.asarray(i, dtype=np.uint8) for i in load_sample_images().images)
    return out


def _crop_background(bg: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    width, height = size
    h, w = bg.shape[:2]
    scale = rng.uniform(0.5, 1.0)
    cw, ch = max(8, int(w * scale)), max(8, int(h * scale))
    cw, ch = min(cw, int(ch * width / height)), min(ch, int(cw * height / width))  # keep the output's aspect
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    return np.asarray(
        Image.fromarray(bg[y0 : y0 + ch, x0 : x0 + cw]).resize((width, height), Image.Resampling.BILINEAR)
    )


def _patch(grey: np.ndarray, side: int, tone: np.ndarray) -> np.ndarray:
    up = np.asarray(
        Image.fromarray((grey * 255).astype(np.uint8)).resize((side, side), Image.Resampling.BICUBIC), dtype=np.float64
    )
    return np.clip(up[..., None] * tone[None, None, :], 0, 255).astype(np.uint8)


def _free_spot(
    side: int, taken: list[tuple[int, int, int, int]], size: tuple[int, int], rng: np.random.Generator
) -> tuple[int, int] | None:
    width, height = size
    for _ in range(50):
        x, y = int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1))
        if all(
            x + side + 4 <= tx or tx + tw + 4 <= x or y + side + 4 <= ty or ty + th + 4 <= y for tx, ty, tw, th in taken
        ):
            return x, y
    return None


def make_face_coco(
    out_dir: Path,
    n_images: int = 48,
    seed: int = 0,
    size: tuple[int, int] = (320, 240),
    split: str = "val2017",
    max_faces: int = 3,
) -> Path:
    """Write ``<out_dir>/<split>/*.png`` and ``<out_dir>/annotations/instances_<split>.json``."""
    import skimage.data

    lfw = skimage.data.lfw_subset()  # 100 faces, then 100 non-faces
    faces, non_faces = lfw[:100], lfw[100:]
    backgrounds = _backgrounds()
    rng = np.random.default_rng(seed)
    width, height = size
    image_dir = out_dir / split
    image_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "annotations").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    ann_id = 1
    for image_id in range(1, n_images + 1):
        canvas = _crop_background(backgrounds[int(rng.integers(0, len(backgrounds)))], size, rng).copy()
        taken: list[tuple[int, int, int, int]] = []
        for _ in range(int(rng.integers(1, max_faces + 1))):
            side = int(rng.integers(44, min(110, height // 2) + 1))
            spot = _free_spot(side, taken, size, rng)
            if spot is None:
                continue
            x, y = spot
            tone = _SKIN_TONES[int(rng.integers(0, len(_SKIN_TONES)))]
            canvas[y : y + side, x : x + side] = _patch(faces[int(rng.integers(0, len(faces)))], side, tone)
            taken.append((x, y, side, side))
            annotations.append(
                {
                    "id": ann_id,
                    "image_id": image_id,
                    "category_id": 1,
                    "bbox": [x, y, side, side],
                    "area": float(side * side),
                    "iscrowd": 0,
                }
            )
            ann_id += 1
        if rng.random() < 0.5:  # a non-face distractor, not annotated
            side = int(rng.integers(40, 90))
            spot = _free_spot(side, taken, size, rng)
            if spot is not None:
                x, y = spot
                canvas[y : y + side, x : x + side] = _patch(
                    non_faces[int(rng.integers(0, len(non_faces)))], side, _SKIN_TONES[-1]
                )
        name = f"{image_id:06d}.png"
        Image.fromarray(canvas).save(image_dir / name)
        images.append({"id": image_id, "file_name": name, "width": width, "height": height})
    doc = {"images": images, "annotations": annotations, "categories": CATEGORIES}
    tmp = out_dir / "annotations" / f".instances_{split}.json.tmp"
    tmp.write_text(json.dumps(doc))
    tmp.replace(out_dir / "annotations" / f"instances_{split}.json")
    return out_dir
