"""Handmake domain: the scene modelled in clay or felt.

COCO-O's "handmake" images are photos of hand-made objects (clay, felt, knitted, paper
models): few colours, rounded simplified shapes, and a soft matte material whose bumps and
fibres catch the light. The shift imitates that:

* median and edge-preserving smoothing round shapes off and remove detail (modelling by hand);
* posterisation to a small palette of the image's own colours (k-means, as the cartoon
  domain; per-channel levels would turn skin green) gives the handful of clay/felt colours,
  with 30 % of each pixel's own colour mixed back so small parts keep their hue;
* **bump shading**: a height map in which each colour patch is a raised piece with rounded
  borders (a profile of the distance to the patch's border), plus a fibre/fingerprint noise
  texture, is lit from one side (Lambert shading of its normals): an emboss that makes the
  surface look physical.
"""

from __future__ import annotations

import cv2
import numpy as np

from trustflow.tasks.detection.shifts import DOMAIN_SHIFTS, odd, size_scale, to_uint8
from trustflow.tasks.detection.shifts.cartoon import quantise

LUMA = np.array([0.299, 0.587, 0.114], np.float32)


@DOMAIN_SHIFTS.register("handmake")
def handmake(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    s = size_scale(img)

    shaped = cv2.medianBlur(img, odd(3 * s))
    shaped = cv2.edgePreservingFilter(shaped, flags=cv2.RECURS_FILTER, sigma_s=10.0 * s, sigma_r=0.2)
    hsv = cv2.cvtColor(shaped, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(1.15, 1.35) + 10, 0, 255)  # dyed clay/felt colours
    vivid = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)
    flat: np.ndarray = quantise(vivid, int(rng.integers(9, 13)), rng).clip(0, 255).astype(np.uint8)
    flat = cv2.medianBlur(flat, odd(3 * s))  # round the colour patches' outlines
    # a little of each region's own colour returns, so small parts (a face among grey) keep their hue
    colour = 0.7 * flat.astype(np.float32) + 0.3 * cv2.medianBlur(vivid, odd(3 * s)).astype(np.float32)
    colour = cv2.GaussianBlur(colour / 255.0, (0, 0), max(0.5, 0.7 * s))

    # height: every colour patch is a separate, inflated piece (rounded profile rising from its
    # border, from the distance transform), plus material texture (fibres or fingerprints)
    kernel = np.ones((3, 3), np.uint8)
    border = (cv2.morphologyEx(flat, cv2.MORPH_GRADIENT, kernel).max(axis=2) > 0).astype(np.uint8)
    distance = cv2.distanceTransform(1 - border, cv2.DIST_L2, 3)
    rise = max(2.0, 6.0 * s)
    profile = 1.0 - (1.0 - np.minimum(distance, rise) / rise) ** 2
    height = cv2.GaussianBlur(profile, (0, 0), max(0.5, 1.0 * s)) * 0.5 * rise  # border slope about 45°
    fine = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), max(0.5, 0.8 * s))
    coarse = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), max(1.0, 4.0 * s))
    height += rng.uniform(0.35, 0.55) * fine + 2.0 * s * coarse / max(1e-6, float(coarse.std())) * 0.3

    gx = cv2.Sobel(height, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(height, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    azimuth = np.radians(rng.uniform(100, 170))  # light from the upper left, roughly
    elevation = np.radians(rng.uniform(40, 55))
    light = np.array([np.cos(azimuth) * np.cos(elevation), -np.sin(azimuth) * np.cos(elevation), np.sin(elevation)])
    # normal = (-gx, -gy, 1) / norm and light = (x right, y down, z up)
    norm = np.sqrt(gx * gx + gy * gy + 1.0)
    lambert = (-gx * light[0] - gy * light[1] + light[2]) / norm
    shading = 0.45 + 0.65 * np.clip(lambert, 0.0, 1.0) / light[2]  # flat top -> 1.1; matte, no highlights
    out = colour * np.clip(shading, 0.35, 1.3)[..., None] * 0.92
    return to_uint8(out)
