"""What the attribute editors share: inpainting the object out, moving it, pasting it back.

ImageNet-E's toolkit removes the object with TFill, transforms it, and lets a diffusion model
re-synthesise the scene around the kept object. No diffusion weights exist offline here, so
the editors use classical operations, with the same invariant: **the object's pixels are kept**.

* :func:`clean_background` — the object inpainted out with ``cv2.inpaint`` (Telea) over
  the mask dilated by a few pixels (a GrabCut or polygon mask leaves a halo of object colour
  at its rim that would otherwise be smeared into the hole). Cached per object, since the
  background, size, position and direction editors all need it.
* :func:`transform_object` — scale/rotate the object about its box centre and keep it inside
  the frame. Colour and coverage are warped *premultiplied* (colour × mask, then ÷ coverage),
  so no pixel of the old background bleeds into the object's rim; the new mask is
  coverage ≥ ½. This is the only resampling, hence "object pixels kept up to resampling" for
  size and direction; shifts (position) are integer and exact.
* :func:`composite` — the object pasted on a background with an **outward** feather: inside
  the mask the pixels are the object's, exactly; in a ring of ``feather`` pixels outside it
  the composite is blended with its own blur, fading out with distance, so the seam does not
  show as a hard cut edge. Poisson blending (``cv2.seamlessClone``) was not used because it
  shifts the object's own colours towards the new background, which would confound a
  background edit with a colour edit of the object.
* :func:`spectral_complexity` — the background-complexity measure: ImageNet-E's guidance
  term, the mean absolute 2-D FFT magnitude of the image in [0, 1] (grey, orthonormal FFT,
  DC term left out), measured on the output with the object's pixels and the feathered seam
  around them replaced by the mean of the rest (the object must not count). :func:`complexity_bin` bins it.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Annotated, Any

import numpy as np
from pydantic import BeforeValidator

from trustflow.tasks.attributes.editors.base import MaskedObject

INPAINT_DILATE_PX = 3
INPAINT_RADIUS = 5
FEATHER_PX = 2
# bin edges of spectral_complexity (upper bounds of flat, smooth, textured; above: cluttered),
# set from the four background levels measured on the embedded and synthetic objects (flat ≈ 0,
# gradient 0.0008–0.022, texture 0.016–0.09, clutter 0.054–0.16: coarse across images, monotone
# within one object, which is what the tests hold the editor to)
COMPLEXITY_BINS: tuple[tuple[str, float], ...] = (("flat", 0.0005), ("smooth", 0.02), ("textured", 0.07))
_CACHE: OrderedDict[str, np.ndarray] = OrderedDict()
_CACHE_SIZE = 16


def _split_csv(value: Any) -> Any:
    """Options arrive from spec strings: ``"a,b,c"`` becomes a tuple of strings."""
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return value


Levels = Annotated[tuple[str, ...], BeforeValidator(_split_csv)]


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the mask's pixels, end-exclusive."""
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _dilate(mask: np.ndarray, px: int) -> np.ndarray:
    import cv2

    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel) > 0


def inpaint(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``image`` with the (dilated) ``mask`` region filled by ``cv2.inpaint`` (Telea)."""
    import cv2

    hole = _dilate(mask, INPAINT_DILATE_PX).astype(np.uint8) * 255
    bgr = np.ascontiguousarray(image[..., ::-1])
    return np.ascontiguousarray(cv2.inpaint(bgr, hole, INPAINT_RADIUS, cv2.INPAINT_TELEA)[..., ::-1])


def clean_background(obj: MaskedObject) -> np.ndarray:
    """The object's image with the object inpainted out (cached per object and mask)."""
    key = hashlib.sha1(obj.object_id.encode() + obj.image.tobytes() + obj.mask.tobytes()).hexdigest()
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    out = inpaint(obj.image, obj.mask)
    _CACHE[key] = out
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return out


def composite(background: np.ndarray, layer: np.ndarray, mask: np.ndarray, feather: int = FEATHER_PX) -> np.ndarray:
    """``layer`` on ``background`` where ``mask``; exact inside, feathered outward (see module)."""
    import cv2

    out = background.copy()
    out[mask] = layer[mask]
    if feather <= 0:
        return out
    ring = _dilate(mask, feather) & ~mask
    if not ring.any():
        return out
    blurred = cv2.GaussianBlur(out, (0, 0), sigmaX=max(feather / 2, 0.5))
    dist = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 3)
    weight = np.clip(1.0 - dist / (feather + 1), 0.0, 1.0)[..., None]
    mixed = weight * blurred.astype(np.float64) + (1 - weight) * out.astype(np.float64)
    out[ring] = np.clip(np.rint(mixed[ring]), 0, 255).astype(np.uint8)
    return out


def shift_object(image: np.ndarray, mask: np.ndarray, dx: int, dy: int) -> tuple[np.ndarray, np.ndarray]:
    """The object moved by whole pixels: (layer, new mask); exact, the caller keeps it in frame."""
    h, w = mask.shape
    layer = np.zeros_like(image)
    new = np.zeros_like(mask)
    ys, xs = np.nonzero(mask)
    ny, nx = ys + dy, xs + dx
    if ny.min() < 0 or nx.min() < 0 or ny.max() >= h or nx.max() >= w:
        raise ValueError(f"shift ({dx}, {dy}) takes the object out of the {w}x{h} frame")
    layer[ny, nx] = image[ys, xs]
    new[ny, nx] = True
    return layer, new


def _warp(
    image: np.ndarray, mask: np.ndarray, matrix: np.ndarray, area: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    h, w = mask.shape
    alpha = mask.astype(np.float32)
    premult = image.astype(np.float32) * alpha[..., None]
    flags, border = cv2.INTER_LINEAR, cv2.BORDER_CONSTANT
    colour = cv2.warpAffine(premult, matrix, (w, h), flags=flags, borderMode=border, borderValue=0)
    cover = cv2.warpAffine(alpha, matrix, (w, h), flags=flags, borderMode=border, borderValue=0)
    if area is None:
        new_mask = cover >= 0.5
    else:  # the ``area`` best-covered pixels (ties in raster order): an exact pixel count
        order = np.argsort(-cover.reshape(-1), kind="stable")[: max(1, min(area, int((cover > 0).sum())))]
        new_mask = np.zeros(cover.size, bool)
        new_mask[order] = True
        new_mask = new_mask.reshape(cover.shape)
    layer = np.zeros_like(image)
    layer[new_mask] = np.clip(np.rint(colour[new_mask] / cover[new_mask][:, None]), 0, 255).astype(np.uint8)
    return layer, new_mask


def _extent(mask: np.ndarray, matrix: np.ndarray) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of the mask's pixel squares mapped through ``matrix`` (no clipping)."""
    ys, xs = np.nonzero(mask)
    corners = []
    for ox, oy in ((-0.5, -0.5), (0.5, -0.5), (-0.5, 0.5), (0.5, 0.5)):
        pts = np.stack([xs + ox, ys + oy, np.ones_like(xs, dtype=np.float64)])
        corners.append(matrix @ pts)
    allp = np.concatenate(corners, axis=1)
    return float(allp[0].min()), float(allp[1].min()), float(allp[0].max()), float(allp[1].max())


def transform_object(
    image: np.ndarray,
    mask: np.ndarray,
    scale: float,
    angle: float,
    shrink_to_fit: bool = True,
    area: int | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Scale by ``scale`` and rotate by ``angle`` degrees (counter-clockwise) about the
    object's box centre, then shift the result by whole pixels into the frame.

    Returns (layer, new mask, scale used): when the transformed object is larger than the
    frame and ``shrink_to_fit``, the scale is reduced until it fits (never cropped). The new
    mask is the pixels covered at least half, or, with ``area``, the ``area`` best-covered
    pixels: a resampled mask's pixel count jumps by whole rows, so an exact area needs the
    coverage threshold chosen per image (it stays near ½ when ``scale`` matches ``area``)."""
    import cv2

    h, w = mask.shape
    x0, y0, x1, y1 = mask_box(mask)
    centre = ((x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2)
    for _ in range(4):
        matrix = cv2.getRotationMatrix2D(centre, angle, scale)
        ex0, ey0, ex1, ey1 = _extent(mask, matrix)
        fit = min((w - 1) / max(ex1 - ex0, 1e-9), (h - 1) / max(ey1 - ey0, 1e-9))
        if fit >= 1.0 or not shrink_to_fit:
            break
        scale *= fit * 0.995
    dx = -ex0 + 0.5 if ex0 < -0.5 else (w - 0.5 - ex1 if ex1 > w - 0.5 else 0.0)
    dy = -ey0 + 0.5 if ey0 < -0.5 else (h - 0.5 - ey1 if ey1 > h - 0.5 else 0.0)
    matrix[0, 2] += np.ceil(dx) if dx > 0 else np.floor(dx)
    matrix[1, 2] += np.ceil(dy) if dy > 0 else np.floor(dy)
    layer, new_mask = _warp(image, mask, matrix, area)
    return layer, new_mask, scale


def spectral_complexity(image: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean |FFT2| of the grey image in [0, 1] (orthonormal, DC left out); object pixels
    (``mask``) are replaced by the background's mean first, so only the background counts."""
    grey = image.astype(np.float64) @ np.array([0.299, 0.587, 0.114]) / 255.0
    if mask is not None and mask.any() and not mask.all():
        seam = _dilate(mask, FEATHER_PX + 1)  # the feathered seam belongs to neither
        grey = grey.copy()
        grey[seam] = grey[~seam].mean() if (~seam).any() else grey[~mask].mean()
    spectrum = np.abs(np.fft.fft2(grey, norm="ortho"))
    spectrum[0, 0] = 0.0
    return float(spectrum.sum() / (spectrum.size - 1))


def complexity_bin(value: float) -> str:
    """The named bin of a :func:`spectral_complexity` value (edges in ``COMPLEXITY_BINS``)."""
    for name, upper in COMPLEXITY_BINS:
        if value < upper:
            return name
    return "cluttered"


__all__ = [
    "COMPLEXITY_BINS",
    "Levels",
    "clean_background",
    "complexity_bin",
    "composite",
    "inpaint",
    "mask_box",
    "shift_object",
    "spectral_complexity",
    "transform_object",
]
