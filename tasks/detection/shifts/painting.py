"""Painting domain: an oil/acrylic look with visible brush strokes on canvas.

Paintings keep composition and colour but replace fine texture by patches of paint laid
down with directional strokes. ``xphoto.oilPainting`` is not in opencv-python-headless, so
the shift composes its own:

* a **Kuwahara filter** (each pixel takes the mean colour of whichever of its four corner
  windows is flattest): the standard painterly filter, flat patches with crisp borders;
* **brush strokes**: noise smeared along short lines whose direction follows the local
  edge orientation (from the structure tensor), so strokes run along contours as a painter's
  would, modulating the paint's brightness by a few per cent, plus a small sideways jitter
  of the paint along the same strokes;
* dark **accents** where the image has small dark details (a difference of Gaussians), which
  the Kuwahara patches would otherwise erase (eyes, mouths);
* a **canvas weave** and a richer, slightly warmer palette (varnish).
"""

from __future__ import annotations

import cv2
import numpy as np

from trustflow.tasks.detection.shifts import DOMAIN_SHIFTS, line_kernel, size_scale, to_uint8

N_ORIENTATIONS = 6


def kuwahara(img: np.ndarray, radius: int) -> np.ndarray:
    """Kuwahara filter of a float32 H×W×3 image with square windows of side ``radius + 1``."""
    h, w = img.shape[:2]
    k = radius + 1
    grey = img @ np.array([0.299, 0.587, 0.114], np.float32)
    mean = cv2.blur(img, (k, k), borderType=cv2.BORDER_REFLECT)
    grey_mean = cv2.blur(grey, (k, k), borderType=cv2.BORDER_REFLECT)
    var = cv2.blur(grey * grey, (k, k), borderType=cv2.BORDER_REFLECT) - grey_mean * grey_mean
    # the window centred at (y, x) is the corner window of the pixel offset by ±radius/2
    a, b = radius // 2, radius - radius // 2
    mean_p = cv2.copyMakeBorder(mean, a, b, a, b, cv2.BORDER_REPLICATE)
    var_p = cv2.copyMakeBorder(var, a, b, a, b, cv2.BORDER_REPLICATE)
    offsets = [(0, 0), (0, radius), (radius, 0), (radius, radius)]
    variances = np.stack([var_p[dy : dy + h, dx : dx + w] for dy, dx in offsets])
    best = np.argmin(variances, axis=0)
    out = np.empty_like(img)
    for i, (dy, dx) in enumerate(offsets):
        sel = best == i
        out[sel] = mean_p[dy : dy + h, dx : dx + w][sel]
    return out


def stroke_orientation(grey: np.ndarray, sigma: float) -> np.ndarray:
    """Per-pixel index into ``N_ORIENTATIONS`` angles, along edges (structure tensor)."""
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    jxx = cv2.GaussianBlur(gx * gx, (0, 0), sigma)
    jyy = cv2.GaussianBlur(gy * gy, (0, 0), sigma)
    jxy = cv2.GaussianBlur(gx * gy, (0, 0), sigma)
    gradient_angle = 0.5 * np.arctan2(2 * jxy, jxx - jyy)  # image coordinates, y down
    along_edge = np.degrees(-gradient_angle) + 90.0  # perpendicular to the gradient, y up
    return np.round(along_edge / (180.0 / N_ORIENTATIONS)).astype(np.int64) % N_ORIENTATIONS


@DOMAIN_SHIFTS.register("painting")
def painting(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    s = size_scale(img)
    x: np.ndarray = img.astype(np.float32) / 255.0

    # richer colour first, so the paint patches carry it
    hsv = cv2.cvtColor(x, cv2.COLOR_RGB2HSV)
    hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(1.2, 1.45), 0, 1)
    x = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)

    paint = kuwahara(x, max(2, int(round(rng.uniform(2.0, 3.0) * s))))
    paint = kuwahara(paint, max(2, int(round(2.0 * s))))  # second, small pass rounds off blocky patches

    # accents: a painter puts back the small dark marks (eyes, mouths, creases) the patches erase
    g = x @ np.array([0.299, 0.587, 0.114], np.float32)
    sigma = max(0.6, 1.2 * s)
    dog = cv2.GaussianBlur(g, (0, 0), sigma) - cv2.GaussianBlur(g, (0, 0), 2.0 * sigma)
    accents = cv2.GaussianBlur(np.clip(-dog * 8.0, 0.0, 0.6), (0, 0), max(0.5, 0.8 * s))
    paint = paint * (1.0 - accents)[..., None]

    # brush strokes along the local edge direction
    grey = paint @ np.array([0.299, 0.587, 0.114], np.float32)
    orientation = stroke_orientation(grey, max(1.0, 3.0 * s))
    length = max(3.0, rng.uniform(8.0, 12.0) * s)
    # channel 0: brightness noise (slightly blurred: bristle width), channel 1: jitter noise
    noise = rng.normal(0, 1, (h, w, 2)).astype(np.float32)
    noise[..., 0] = cv2.GaussianBlur(noise[..., 0], (0, 0), max(0.5, 0.8 * s))
    smeared = np.zeros((h, w, 2), np.float32)
    for i in range(N_ORIENTATIONS):
        sel = orientation == i
        if sel.any():
            kernel = line_kernel(length, i * 180.0 / N_ORIENTATIONS)
            smeared[sel] = cv2.filter2D(noise, -1, kernel, borderType=cv2.BORDER_REFLECT)[sel]
    strokes, jitter = smeared[..., 0], smeared[..., 1]
    strokes /= max(1e-6, float(strokes.std()))
    jitter /= max(1e-6, float(jitter.std()))

    # paint jitter: displace the paint a little across the strokes (ragged patch borders)
    amount = 1.5 * s
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    smear = cv2.GaussianBlur(jitter, (0, 0), max(0.5, 1.0 * s)) * amount
    paint = cv2.remap(paint, xs + smear, ys - smear, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    paint = paint * (1.0 + 0.07 * np.clip(strokes, -2.5, 2.5))[..., None]

    # canvas weave, and a warm varnish
    period = max(2.0, 3.0 * s)
    weave = np.sin(xs * (2 * np.pi / period)) * np.sin(ys * (2 * np.pi / period))
    paint = paint * (1.0 + 0.04 * weave)[..., None]
    varnish = np.array([1.03, 1.0, 0.9], np.float32) * rng.uniform(0.97, 1.03)
    return to_uint8(paint * varnish)
