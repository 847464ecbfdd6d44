"""Sketch domain: a grey pencil drawing of the image on paper.

COCO-O's sketches are line drawings with little or no colour and shading done by strokes,
so the shift removes colour and texture cues while keeping contours. The classic pencil
recipe does most of it: a *colour dodge* of the grey image with its blurred negative is
white where the image is flat and dark only across edges (the drawn contours). Shading is
then added back as hatching, i.e. short parallel strokes whose density follows the image's
darkness (cross-hatched where it is darkest), on a slightly grainy, tinted paper.
"""

from __future__ import annotations

import cv2
import numpy as np

from trustflow.tasks.detection.shifts import DOMAIN_SHIFTS, line_kernel, size_scale, to_uint8


def hatching(h: int, w: int, angle: float, length: float, density: float, rng: np.random.Generator) -> np.ndarray:
    """H×W float32 in [0, 1]: random short strokes at one angle (sparse dots smeared along a line)."""
    dots = (rng.random((h, w), dtype=np.float32) < density).astype(np.float32)
    dots *= rng.uniform(0.6, 1.0, size=(h, w)).astype(np.float32)
    strokes = cv2.filter2D(dots, -1, line_kernel(length, angle), borderType=cv2.BORDER_REFLECT)
    return np.clip(strokes * length * 0.9, 0.0, 1.0)


@DOMAIN_SHIFTS.register("sketch")
def sketch(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    s = size_scale(img)
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)

    # contours: colour dodge of grey with its blurred negative (white where flat, dark at edges)
    # dark areas are lifted first: the hatching below shades them, a pencil does not fill solid black
    lifted = (255 - (255 - grey.astype(np.float32)) * 0.7).astype(np.uint8)
    blurred_negative = cv2.GaussianBlur(255 - lifted, (0, 0), max(0.8, rng.uniform(3.0, 5.0) * s))
    dodge = cv2.divide(lifted, 255 - blurred_negative, scale=256).astype(np.float32) / 255.0
    lines = np.clip(dodge, 0.0, 1.0) ** rng.uniform(2.0, 3.0)  # a harder pencil: darker lines

    # shading: hatching density follows the (smoothed) darkness of the scene
    darkness = 1.0 - cv2.GaussianBlur(grey, (0, 0), max(0.6, 2.0 * s)).astype(np.float32) / 255.0
    shade = np.clip((darkness - 0.3) / 0.6, 0.0, 1.0)
    angle = rng.uniform(30.0, 60.0)
    length = max(3.0, rng.uniform(7.0, 11.0) * s)
    density = 0.07 / max(1.0, length / 3)
    first = hatching(h, w, angle, length, density * 2.5, rng)
    cross = hatching(h, w, angle - 90.0 + rng.uniform(-10, 10), length, density * 2.5, rng)
    strokes = np.maximum(first * shade, cross * np.clip(shade * 1.6 - 0.8, 0.0, 1.0))
    drawing = lines * (1.0 - 0.6 * strokes)

    # paper: fine grain, and a faint warm or cool tint
    grain = cv2.GaussianBlur(rng.normal(0.0, 1.0, (h, w)).astype(np.float32), (0, 0), 0.7)
    drawing = np.clip(drawing * (1.0 - 0.05 * np.abs(grain)), 0.0, 1.0)
    tint = np.array([1.0, 0.98, 0.93], np.float32) if rng.random() < 0.6 else np.array([0.96, 0.97, 1.0], np.float32)
    graphite = np.array([0.16, 0.16, 0.18], np.float32)
    out = graphite + (tint - graphite) * drawing[..., None]
    return to_uint8(out)
