"""Background complexity: the object kept, its background replaced at a controlled complexity.

Levels, in order of complexity (ImageNet-E guides a diffusion model towards more or less
complex backgrounds; here each level is built directly):

* ``flat`` — one colour, the mean of the object's own inpainted background;
* ``gradient`` — a linear ramp between two colours around that mean, random direction;
* ``texture`` — a natural texture (a random crop of scikit-image's brick, grass or gravel
  photographs), tinted with the background's mean colour;
* ``clutter`` — high-frequency clutter: many small random rectangles and lines in random
  colours over the inpainted background, plus per-pixel noise (± 48 levels), so it is the
  most complex level whatever the image size.

``value`` is the complexity *measured on the output* (compose.spectral_complexity: the mean
absolute FFT magnitude, ImageNet-E's own guidance term), not the level's rank; reports bin it
with compose.complexity_bin.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from PIL import Image, ImageDraw
from pydantic import field_validator

from trustflow.registry import Options
from trustflow.tasks.attributes.compose import Levels, clean_background, composite, spectral_complexity
from trustflow.tasks.attributes.editors.base import EDITORS, Editor, EditResult, MaskedObject

LEVELS = ("flat", "gradient", "texture", "clutter")
TEXTURES = ("brick", "grass", "gravel")
CLUTTER_NOISE = 48  # ± grey levels of per-pixel noise on top of the clutter shapes


class BackgroundOptions(Options):
    """``levels``: which of flat, gradient, texture, clutter to make (comma-separated)."""

    levels: Levels = LEVELS

    @field_validator("levels")
    @classmethod
    def _known(cls, levels: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [lv for lv in levels if lv not in LEVELS]
        if unknown or not levels:
            raise ValueError(f"levels must be among {', '.join(LEVELS)}, got {', '.join(levels) or 'none'}")
        return levels


@functools.lru_cache(maxsize=len(TEXTURES))
def _texture(name: str) -> np.ndarray:
    import skimage.data

    return np.asarray(getattr(skimage.data, name)(), dtype=np.uint8)


def _ramp(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    angle = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    t = np.cos(angle) * xx / max(w - 1, 1) + np.sin(angle) * yy / max(h - 1, 1)
    return (t - t.min()) / max(t.max() - t.min(), 1e-9)


def make_background(clean: np.ndarray, level: str, rng: np.random.Generator) -> np.ndarray:
    """The new background (H×W×3 uint8) for ``level``, from the inpainted background."""
    h, w = clean.shape[:2]
    mean = clean.reshape(-1, 3).mean(axis=0)
    if level == "flat":
        return np.broadcast_to(np.rint(mean).astype(np.uint8), (h, w, 3)).copy()
    if level == "gradient":
        delta = rng.uniform(40, 80) * rng.choice([-1.0, 1.0], size=3)
        a, b = np.clip(mean - delta, 0, 255), np.clip(mean + delta, 0, 255)
        t = _ramp(h, w, rng)[..., None]
        return np.rint(a * (1 - t) + b * t).astype(np.uint8)
    if level == "texture":
        tex = _texture(TEXTURES[int(rng.integers(0, len(TEXTURES)))])
        th, tw = tex.shape
        side = int(rng.integers(min(th, tw) // 3, min(th, tw) + 1))
        y, x = int(rng.integers(0, th - side + 1)), int(rng.integers(0, tw - side + 1))
        crop = np.asarray(Image.fromarray(tex[y : y + side, x : x + side]).resize((w, h), Image.Resampling.BILINEAR))
        grey = crop.astype(np.float64) / max(crop.mean(), 1.0)
        return np.clip(np.rint(grey[..., None] * mean[None, None]), 0, 255).astype(np.uint8)
    if level == "clutter":
        canvas = Image.fromarray(clean.copy())
        draw = ImageDraw.Draw(canvas)
        unit = max(1, round(min(h, w) / 48))
        for _ in range(int(h * w / (unit * unit) * 0.5)):
            x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
            colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
            if rng.random() < 0.6:
                dx, dy = (int(v) for v in rng.integers(1, 2 * unit + 1, size=2))
                draw.rectangle([x, y, x + dx, y + dy], fill=colour)
            else:
                x2, y2 = x + int(rng.integers(-3 * unit, 3 * unit + 1)), y + int(rng.integers(-3 * unit, 3 * unit + 1))
                draw.line([x, y, x2, y2], fill=colour, width=max(1, unit // 2))
        noise = rng.integers(-CLUTTER_NOISE, CLUTTER_NOISE + 1, size=(h, w, 3))
        return np.clip(np.asarray(canvas).astype(np.int64) + noise, 0, 255).astype(np.uint8)
    raise ValueError(f"unknown background level {level!r}")


@EDITORS.register("background", options=BackgroundOptions)
class BackgroundEditor(Editor[BackgroundOptions]):
    """Replace the background at a complexity level; value = measured spectral complexity."""

    attribute = "background"

    def levels(self) -> list[str]:
        return list(self.options.levels)

    def edit(self, obj: MaskedObject, level: str, rng: np.random.Generator) -> EditResult:
        background = make_background(clean_background(obj), level, rng)
        image = composite(background, obj.image, obj.mask)
        return EditResult(image=image, mask=obj.mask.copy(), value=spectral_complexity(image, obj.mask))
