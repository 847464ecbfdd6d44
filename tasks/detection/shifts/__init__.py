"""COCO-O style domain shifts: image-to-image style transforms that keep every box valid.

COCO-O (Mao et al., ICCV 2023) re-collects COCO's 80 categories in six out-of-distribution
domains. Its images are not always at hand, so this package *synthesises* COCO-O-like
domains from any COCO-format set. Every transform is size-preserving and acts on pixels
only (no crop, warp or flip), so the source annotations are copied unchanged and stay exact.

A ``ShiftFn`` takes an H×W×3 uint8 RGB image and a ``numpy`` Generator and returns an image
of the same shape and dtype; all randomness comes from that generator, so a shift is
reproducible (``apply.shift_image`` seeds it per image). Each module of this package that
defines a domain registers it with ``@DOMAIN_SHIFTS.register("<name>")``; the registry
imports the modules on its first lookup, so a new domain is one new module. The six COCO-O
domains have no parameters (their options model is ``NoOptions``; domain names carry none).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np

from trustflow.registry import Registry

ShiftFn = Callable[[np.ndarray, np.random.Generator], np.ndarray]
"""(H×W×3 uint8 RGB image, rng) -> shifted H×W×3 uint8 RGB image."""

DOMAIN_SHIFTS: Registry[ShiftFn] = Registry("domain shift", plugins="trustflow.tasks.detection.shifts")

COCO_O_DOMAINS = ("sketch", "cartoon", "painting", "weather", "handmake", "tattoo")
"""COCO-O's six domains, in the paper's order (the default set; ``DOMAIN_SHIFTS`` may hold more)."""

REFERENCE_SIDE = 240.0
"""Transforms are tuned on 320×240 images; pixel sizes (blur sigmas, stroke lengths) scale
with ``min(H, W) / REFERENCE_SIDE`` so a 640×480 COCO image gets the same look, not finer."""


# Small helpers shared by the domain modules (kept here so each domain stays one file).


def size_scale(img: np.ndarray) -> float:
    """How much larger than the 240-px reference the image is (never below 0.1)."""
    return max(0.1, min(img.shape[0], img.shape[1]) / REFERENCE_SIDE)


def odd(n: float) -> int:
    """Nearest odd integer >= 1: OpenCV's median and box kernels want odd sizes."""
    k = max(1, int(round(n)))
    return k if k % 2 else k + 1


def line_kernel(length: float, angle_deg: float, thickness: int = 1) -> np.ndarray:
    """Normalised straight-line kernel (anti-aliased) used for strokes, hatching and rain."""
    length = max(1.0, length)
    r = int(math.ceil(length / 2)) + 1
    kernel = np.zeros((2 * r + 1, 2 * r + 1), np.float32)
    dx = math.cos(math.radians(angle_deg)) * length / 2
    dy = -math.sin(math.radians(angle_deg)) * length / 2
    shift = 4  # sub-pixel endpoints: 1/16 px
    p0 = (int(round((r - dx) * 16)), int(round((r - dy) * 16)))
    p1 = (int(round((r + dx) * 16)), int(round((r + dy) * 16)))
    cv2.line(kernel, p0, p1, 1.0, thickness, cv2.LINE_AA, shift)
    total = float(kernel.sum())
    if total <= 0:
        kernel[r, r] = 1.0
        total = 1.0
    return kernel / total


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Float image in [0, 1] -> uint8, rounded and clipped."""
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


__all__ = ["COCO_O_DOMAINS", "DOMAIN_SHIFTS", "ShiftFn", "line_kernel", "odd", "size_scale", "to_uint8"]
