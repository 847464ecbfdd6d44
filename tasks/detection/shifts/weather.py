"""Weather domain: the scene seen through fog, rain or snow (one drawn per image).

COCO-O's weather images are real photographs in bad weather: lower contrast, a veil of
light, and occluding precipitation. The shift draws one of three conditions per image:

* ``fog``: a smooth plasma-fractal haze (``plasma_fractal``, as ImageNet-C's fog) blended
  towards a pale grey-blue, stronger at the top of the frame where the scene is farther;
* ``rain``: a darker, bluer, slightly blurred scene with bright streaks, i.e. sparse drops
  motion-blurred along a near-vertical direction, in a near and a far layer;
* ``snow``: a brighter, paler scene with soft flakes of two sizes, slightly wind-blown.

Unlike the COCO-C corruptions these are meant to look like weather rather than to follow
ImageNet-C's severity tables; they are as strong as a clearly bad day, not a white-out.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from trustflow.tasks.detection.shifts import DOMAIN_SHIFTS, line_kernel, size_scale, to_uint8
from trustflow.tasks.robustness.corruptions import plasma_fractal

LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def _haze_map(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """H×W float32 in [0, 1]: plasma fractal drawn at <= 256 px (fog is low-frequency) and resized."""
    mapsize = 1 << max(3, min(8, math.ceil(math.log2(max(h, w, 2)))))
    plasma = plasma_fractal(mapsize, rng.uniform(1.8, 2.4), rng).astype(np.float32)
    return cv2.resize(plasma, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def _desaturate(x: np.ndarray, amount: float) -> np.ndarray:
    grey = (x @ LUMA)[..., None]
    return grey + (x - grey) * (1.0 - amount)


def _screen(x: np.ndarray, layer: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Screen-blend a light layer (H×W in [0, 1]) of ``colour`` onto x: brightens, never darkens."""
    return 1.0 - (1.0 - x) * (1.0 - layer[..., None] * colour)


def fog(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    x = img.astype(np.float32) / 255.0
    haze = _haze_map(h, w, rng)
    depth = np.linspace(1.0, rng.uniform(0.55, 0.8), h, dtype=np.float32)[:, None]  # farther at the top
    density = rng.uniform(0.6, 0.75) * depth * (0.55 + 0.45 * haze)
    colour = np.array([0.84, 0.87, 0.9], np.float32) * rng.uniform(0.92, 1.05)
    x = _desaturate(x, 0.3)
    out = x * (1.0 - density[..., None]) + colour * density[..., None]
    return to_uint8(out)


def _streaks(h: int, w: int, density: float, length: float, angle: float, rng: np.random.Generator) -> np.ndarray:
    drops = (rng.random((h, w), dtype=np.float32) < density).astype(np.float32)
    drops *= rng.uniform(0.5, 1.0, (h, w)).astype(np.float32)
    layer = cv2.filter2D(drops, -1, line_kernel(length, angle), borderType=cv2.BORDER_REFLECT)
    return np.clip(layer * length * 0.7, 0.0, 1.0)


def rain(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    s = size_scale(img)
    x: np.ndarray = img.astype(np.float32) / 255.0
    x = cv2.GaussianBlur(x, (0, 0), max(0.4, 0.8 * s))
    x = _desaturate(x, 0.35) * np.array([0.78, 0.82, 0.9], np.float32)  # overcast: darker and bluer
    angle = 90.0 + rng.uniform(-20, 20)
    near = _streaks(h, w, 0.004, max(4.0, rng.uniform(22, 32) * s), angle, rng)
    far = _streaks(h, w, 0.012, max(3.0, rng.uniform(9, 14) * s), angle + rng.uniform(-4, 4), rng)
    near = cv2.GaussianBlur(near, (0, 0), max(0.3, 0.6 * s))
    colour = np.array([0.86, 0.9, 0.96], np.float32)
    out = _screen(x, 0.7 * near + 0.35 * far, colour)
    return to_uint8(out)


def _flakes(h: int, w: int, density: float, radius: float, rng: np.random.Generator) -> np.ndarray:
    seeds = (rng.random((h, w), dtype=np.float32) < density).astype(np.float32)
    flakes = cv2.GaussianBlur(seeds, (0, 0), radius)
    peak = 1.0 / (2 * math.pi * radius * radius)  # value at a lone flake's centre
    return np.clip(flakes / peak, 0.0, 1.0)


def snow(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    s = size_scale(img)
    x = img.astype(np.float32) / 255.0
    x = _desaturate(x, 0.3)
    x = 0.8 * x + 0.2 * np.array([0.9, 0.92, 0.95], np.float32)  # pale, snowy light
    small = _flakes(h, w, 0.006, max(0.5, 0.9 * s), rng)
    large = _flakes(h, w, 0.0012, max(0.8, 2.0 * s), rng)
    wind = 90.0 + rng.uniform(-35, 35)
    small = cv2.filter2D(small, -1, line_kernel(max(1.0, 3.0 * s), wind), borderType=cv2.BORDER_REFLECT)
    layer = np.clip(1.2 * small + large, 0.0, 1.0)
    out = _screen(x, 0.95 * layer, np.ones(3, np.float32))
    return to_uint8(out)


CONDITIONS = {"fog": fog, "rain": rain, "snow": snow}


@DOMAIN_SHIFTS.register("weather")
def weather(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    name = ("fog", "rain", "snow")[int(rng.integers(3))]
    return CONDITIONS[name](img, rng)
