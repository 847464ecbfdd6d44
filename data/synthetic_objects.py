"""A generated masked-object set: five shape classes with exact masks on varied backgrounds.

Why: the attribute-robustness pipeline needs a classifier the project trains itself (with
and without adversarial training) on objects whose masks are exact, so that an accuracy drop
under an edit is the edit's doing, not a bad mask's. Each image is ``size``×``size`` RGB with
one object of class ``disc``, ``square``, ``triangle``, ``star`` or ``cross``:

* shape drawn as an aliased polygon, so the mask *is* the set of object pixels;
* random size (8–40 % of the frame), position, rotation and a colour from a random hue
  with a stripe or speckle texture (so colour does not give the class away and the object
  has inner detail);
* background: a crop of a scikit-image photograph or texture (brick, grass, gravel, coffee,
  rocket, …), a smooth gradient or a flat colour, so a model cannot lean on one background.

Deterministic: object ``i`` of seed ``s`` depends only on ``(s, i)``, so any worker can make
any slice of the set (the ``synthetic-objects`` ingest kind does it in Ray chunks).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

CLASSES: tuple[str, ...] = ("disc", "square", "triangle", "star", "cross")
BACKGROUNDS: tuple[str, ...] = ("photo", "gradient", "flat")
TEXTURES: tuple[str, ...] = ("stripes", "speckles", "plain")
_PHOTOS = ("brick", "grass", "gravel", "coffee", "rocket", "chelsea", "camera", "moon", "coins", "astronaut")


@functools.lru_cache(maxsize=1)
def _photos() -> tuple[np.ndarray, ...]:
    import skimage.data

    out = []
    for name in _PHOTOS:
        img = np.asarray(getattr(skimage.data, name)())
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        out.append(img[..., :3].astype(np.uint8))
    return tuple(out)


def _background(size: int, rng: np.random.Generator, kinds: Sequence[str] | None = None) -> np.ndarray:
    # the default draw (photos twice as likely) is kept as it was so that existing sets stay the same
    kind = rng.choice(["photo", "photo", "gradient", "flat"] if kinds is None else list(kinds))
    if kind == "photo":
        photo = _photos()[int(rng.integers(0, len(_PHOTOS)))]
        h, w = photo.shape[:2]
        side = int(rng.integers(min(h, w) // 4, min(h, w) + 1))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = Image.fromarray(photo[y : y + side, x : x + side]).resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(crop)
    a, b = rng.integers(0, 256, size=3), rng.integers(0, 256, size=3)
    if kind == "flat":
        return np.broadcast_to(a.astype(np.uint8), (size, size, 3)).copy()
    angle = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    t = (np.cos(angle) * xx + np.sin(angle) * yy - min(0, np.cos(angle)) - min(0, np.sin(angle))) / (
        abs(np.cos(angle)) + abs(np.sin(angle))
    )
    return (a[None, None] * (1 - t[..., None]) + b[None, None] * t[..., None]).astype(np.uint8)


def _polygon(label: str, cx: float, cy: float, r: float, rot: float) -> list[tuple[float, float]]:
    def ring(n: int, radii: list[float], offset: float = 0.0) -> list[tuple[float, float]]:
        pts = []
        for k in range(n * len(radii)):
            a = rot + offset + 2 * math.pi * k / (n * len(radii))
            rr = radii[k % len(radii)]
            pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
        return pts

    if label == "disc":
        return ring(48, [r])
    if label == "square":
        return ring(4, [r], math.pi / 4)
    if label == "triangle":
        return ring(3, [r], -math.pi / 2)
    if label == "star":
        return ring(5, [r, r * 0.45], -math.pi / 2)
    # cross: a plus sign of arm width r/1.6
    a, pts = r / 3.2, []
    for x, y in [
        (-a, -r),
        (a, -r),
        (a, -a),
        (r, -a),
        (r, a),
        (a, a),
        (a, r),
        (-a, r),
        (-a, a),
        (-r, a),
        (-r, -a),
        (-a, -a),
    ]:
        pts.append((cx + x * math.cos(rot) - y * math.sin(rot), cy + x * math.sin(rot) + y * math.cos(rot)))
    return pts


def _colour(rng: np.random.Generator) -> np.ndarray:
    import colorsys

    r, g, b = colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.5, 1), rng.uniform(0.55, 1))
    return np.array([r, g, b]) * 255


def synthetic_object(
    index: int,
    seed: int = 0,
    size: int = 64,
    *,
    backgrounds: Sequence[str] | None = None,
    textures: Sequence[str] | None = None,
    area: tuple[float, float] = (0.08, 0.4),
) -> tuple[str, np.ndarray, np.ndarray]:
    """Object ``index`` of the set: (label, H×W×3 uint8 image, H×W bool exact mask).

    The options make an easier (or different) set; left at their defaults the set is the
    original one, pixel for pixel:

    * ``backgrounds``: the kinds to draw from, uniformly (``photo``, ``gradient``, ``flat``);
      default: photo, photo, gradient, flat (photos half the time);
    * ``textures``: the object textures to draw from, uniformly (``stripes``, ``speckles``,
      ``plain`` = one flat colour); default: stripes or speckles;
    * ``area``: the object's share of the frame (min, max); the radius range grows with it so
      the larger shapes can be drawn (a shape that cannot reach ``min`` in 10 tries is kept
      as drawn last, so stars, the thinnest class, may stay below a high minimum).
    """
    lo, hi = float(area[0]), float(area[1])
    if not 0.0 < lo <= hi < 1.0:
        raise ValueError(f"area must be 0 < min <= max < 1, got {area!r}")
    for name, chosen, known in (("backgrounds", backgrounds, BACKGROUNDS), ("textures", textures, TEXTURES)):
        if chosen is not None and (not chosen or set(chosen) - set(known)):
            raise ValueError(f"{name} must be a non-empty subset of {', '.join(known)}, got {list(chosen)!r}")
    default_area = (lo, hi) == (0.08, 0.4)
    # radius ≈ sqrt(area / shape factor): 0.22–0.42 of the side covers 8–40 % for every shape;
    # other areas scale that range by sqrt(area / default), capped so the shape fits the frame
    r_lo = 0.22 if default_area else min(0.48, 0.22 * math.sqrt(lo / 0.08))
    r_hi = 0.42 if default_area else min(0.49, max(r_lo, 0.42 * math.sqrt(hi / 0.4)))
    rng = np.random.default_rng([seed, index])
    label = CLASSES[index % len(CLASSES)]
    image = _background(size, rng, backgrounds).copy()
    for _ in range(10):
        r = size * rng.uniform(r_lo, r_hi)
        cx, cy = rng.uniform(r, size - r), rng.uniform(r, size - r)
        canvas = Image.new("L", (size, size), 0)
        ImageDraw.Draw(canvas).polygon(_polygon(label, cx, cy, r, rng.uniform(0, 2 * math.pi)), fill=255)
        mask = np.asarray(canvas) > 0
        if lo <= mask.mean() <= hi:
            break
    base = _colour(rng)
    yy, xx = np.mgrid[0:size, 0:size]
    texture = ("stripes" if rng.random() < 0.5 else "speckles") if textures is None else str(rng.choice(list(textures)))
    if texture == "stripes":
        period, phase = rng.uniform(3, 8), rng.uniform(0, 2 * math.pi)
        shade = 0.75 + 0.25 * np.sin(2 * math.pi * (xx + yy) / period + phase)
    elif texture == "speckles":
        shade = rng.uniform(0.7, 1.0, size=(size, size))
    else:
        shade = np.ones((size, size))
    obj = np.clip(base[None, None] * shade[..., None], 0, 255).astype(np.uint8)
    image[mask] = obj[mask]
    return label, image, mask


__all__ = ["BACKGROUNDS", "CLASSES", "TEXTURES", "synthetic_object"]
