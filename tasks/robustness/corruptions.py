"""The 15 ImageNet-C corruptions (Hendrycks & Dietterich, ICLR 2019) × severities 1–5.

Pure numpy/scipy/PIL (no OpenCV, ImageMagick, scikit-image or Wand), deterministic by seed,
for any image size (8×8 digits to ImageNet crops) with 1 or 3 channels. Entry point:

    corrupt(x, name, severity, seed=0, start_index=0) -> x_c

``x`` is float32 NCHW in [0, 1]; ``x_c`` has the same shape and dtype and stays in [0, 1].
Image ``i`` of the batch draws from ``np.random.default_rng([seed, crc32(name), start_index +
i])``, so a dataset corrupts identically whatever the batch size (pass the batch's offset
as ``start_index``).

Parameters follow the CIFAR-10-C tables (``make_cifar_c.py``, Hendrycks' repository), which
are ImageNet-C's tables already scaled down for 32×32 images. Deviations:

* **Spatial scale.** Blur radii and sigmas, the glass-blur shuffle distance and the
  motion-blur length are CIFAR-10-C's pixel values times ``s = max(1, min(H, W) / 32)``:
  they grow with larger images but do not shrink below 32 px, because sub-pixel kernels
  vanish and made severities non-monotone at 8×8. Elastic transform, zoom factors, fog and
  pixelate are relative to the image size already. Images larger than 32 px therefore get
  CIFAR-10-C's intensities (noise, contrast, brightness, JPEG quality, fog, frost), which are
  milder than ImageNet-C's.
* **Motion blur** (ImageMagick's ``-motion-blur radius×sigma+angle`` in the original): a
  one-sided line kernel with Gaussian weights exp(-i²/2σ²), i = 0..radius, at a random angle,
  bilinearly splatted into a 2-D kernel. Snow's streaks use the same kernel.
* **Frost**: the original blends crops of six frost photographs, which are not available
  offline. Here the icy layer is synthesised per image (``frost_texture``): a plasma-fractal
  haze (as fog) plus thin, slightly curving bright crystal streaks, lightly blurred and
  tinted blue-white (grey for one channel), blended as ``keep·x + amount·frost``. The layer
  is darker than the photographs (mean ≈ 0.3), so ``amount`` is raised:
  (1, .25) (.95, .35) (.9, .45) (.85, .55) (.8, .65) instead of CIFAR-10-C's
  (1, .2) (1, .3) (.9, .4) (.85, .4) (.75, .45).
* **Ordered severities.** Two CIFAR-10-C tables are not ordered: glass blur's sigma goes
  .05 .25 .4 .25 .4 with 1 1 1 2 2 shuffle passes, and elastic transform's affine jitter falls
  (.08 → .03 of the size) as its displacement field grows, while the affine part dominates
  the change. Here glass blur uses sigma .05 .1 .15 .2 .25 with 1–5 passes, and the elastic
  affine jitter grows .03 → .07 (displacement as CIFAR-10-C).
* **Snow** on images below 32 px draws its flake layer at k× the size (k = ceil(32 / size))
  and box-averages it down, so flakes and streaks keep CIFAR-10-C's proportions.
* **Same draws at every severity.** Image ``i`` uses one random stream for all severities
  (the severity is not part of the seed), so severities differ only in their parameters.
* **Zoom blur** zooms with bilinear resampling about the image centre (``map_coordinates``)
  instead of ``scipy.ndimage.zoom`` on an integer crop, whose rounding makes small zooms of
  small images a no-op.
* **Brightness** shifts HSV value by scaling RGB with ``V'/V`` (identical to the HSV round
  trip, without scikit-image); **snow**'s grey uses ITU-R 601 weights like OpenCV.
* **Glass blur** keeps the original's sequential local pixel swaps (offsets in [-d, d)) over
  the interior pixels between two Gaussian blurs; **JPEG** encodes the image quantised to 8 bits (mode L
  for one channel); **pixelate** box-resamples each channel in float (PIL mode F). At 8×8,
  pixelate has three distinct levels (7, 7, 6, 6, 5 px) and 5 px changes the image slightly
  less than 6 px (box-filter phase), the one place where severities are not ordered.
* One channel: corruptions defined on colour (brightness, snow, frost) act on the grey value.
"""

from __future__ import annotations

import io
import math
import zlib
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image
from scipy import ndimage

from trustflow.errors import ConfigError
from trustflow.registry import Registry

CorruptionFn = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]
"""(image H×W×C float64 in [0, 1], severity 1..5, rng) -> corrupted H×W×C (clipped by the caller)."""

CORRUPTIONS: Registry[CorruptionFn] = Registry("corruption")
SEVERITIES = (1, 2, 3, 4, 5)
NOISE = ("gaussian_noise", "shot_noise", "impulse_noise")
BLUR = ("defocus_blur", "glass_blur", "motion_blur", "zoom_blur")
WEATHER = ("snow", "frost", "fog", "brightness")
DIGITAL = ("contrast", "elastic_transform", "pixelate", "jpeg_compression")
ALL_CORRUPTIONS = NOISE + BLUR + WEATHER + DIGITAL


# --------------------------------------------------------------------------- helpers


def _scale(img: np.ndarray) -> float:
    return max(1.0, min(img.shape[0], img.shape[1]) / 32.0)


def _supersampling(img: np.ndarray) -> int:
    """Integer factor that brings an image smaller than 32 px to at least 32 px."""
    return max(1, math.ceil(32 / min(img.shape[0], img.shape[1])))


def _block_mean(a: np.ndarray, k: int) -> np.ndarray:
    if k == 1:
        return a
    h, w, c = a.shape
    return a.reshape(h // k, k, w // k, k, c).mean(axis=(1, 3))


def _per_channel(img: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    return np.stack([fn(img[..., c]) for c in range(img.shape[2])], axis=-1)


def _grey(img: np.ndarray) -> np.ndarray:
    """H×W×1 luminance (ITU-R 601, as OpenCV's RGB2GRAY)."""
    if img.shape[2] == 1:
        return img
    return (img[..., :3] @ np.array([0.299, 0.587, 0.114]))[..., None]


def _gaussian(img: np.ndarray, sigma: float) -> np.ndarray:
    return ndimage.gaussian_filter(img, sigma=(sigma, sigma, 0), mode="nearest", truncate=4.0)


def _disk(radius: float, alias_blur: float) -> np.ndarray:
    """Normalised aliased disk, smoothed by a 3-tap Gaussian (cv2.GaussianBlur ksize 3)."""
    r = max(1, math.ceil(radius)) + 1
    coords = np.arange(-r, r + 1)
    xx, yy = np.meshgrid(coords, coords)
    kernel = ((xx**2 + yy**2) <= radius**2).astype(np.float64)
    kernel /= kernel.sum()
    taps = np.exp(-np.array([1.0, 0.0, 1.0]) / (2 * alias_blur**2))
    taps /= taps.sum()
    kernel = ndimage.correlate1d(kernel, taps, axis=0, mode="constant")
    kernel = ndimage.correlate1d(kernel, taps, axis=1, mode="constant")
    return kernel / kernel.sum()


def _motion_kernel(radius: int, sigma: float, angle_deg: float) -> np.ndarray:
    """One-sided line of Gaussian weights from the centre towards ``angle`` (ImageMagick-like)."""
    radius = max(1, int(radius))
    size = 2 * radius + 1
    kernel = np.zeros((size, size))
    theta = math.radians(angle_deg)
    steps = np.arange(radius + 1, dtype=np.float64)
    weights = np.exp(-(steps**2) / (2 * sigma**2))
    rows = radius - steps * math.sin(theta)
    cols = radius + steps * math.cos(theta)
    r0, c0 = np.floor(rows).astype(int), np.floor(cols).astype(int)
    fr, fc = rows - r0, cols - c0
    for dr, dc, w in ((0, 0, (1 - fr) * (1 - fc)), (1, 0, fr * (1 - fc)), (0, 1, (1 - fr) * fc), (1, 1, fr * fc)):
        rr, cc = np.clip(r0 + dr, 0, size - 1), np.clip(c0 + dc, 0, size - 1)
        np.add.at(kernel, (rr, cc), weights * w)
    return kernel / kernel.sum()


def _motion_blur(img: np.ndarray, radius: int, sigma: float, angle: float) -> np.ndarray:
    kernel = _motion_kernel(radius, sigma, angle)
    return _per_channel(img, lambda ch: ndimage.convolve(ch, kernel, mode="nearest"))


def _zoom_about_centre(img: np.ndarray, factor: float) -> np.ndarray:
    """Magnify by ``factor`` about the centre, same size (bilinear, edges repeated)."""
    h, w = img.shape[:2]
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    rows = cy + (np.arange(h) - cy) / factor
    cols = cx + (np.arange(w) - cx) / factor
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    return _per_channel(img, lambda ch: ndimage.map_coordinates(ch, [rr, cc], order=1, mode="nearest"))


def plasma_fractal(mapsize: int, wibbledecay: float, rng: np.random.Generator) -> np.ndarray:
    """Diamond-square height map in [0, 1] (Hendrycks' ``plasma_fractal``); ``mapsize`` a power of 2."""
    if mapsize < 2 or mapsize & (mapsize - 1):
        raise ValueError(f"mapsize must be a power of 2 >= 2, got {mapsize}")
    maparray = np.zeros((mapsize, mapsize), dtype=np.float64)
    stepsize = mapsize
    wibble = 100.0

    def wibbledmean(array: np.ndarray) -> np.ndarray:
        return array / 4 + wibble * rng.uniform(-wibble, wibble, array.shape)

    while stepsize >= 2:
        half = stepsize // 2
        corners = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        square = corners + np.roll(corners, shift=-1, axis=0)
        square += np.roll(square, shift=-1, axis=1)
        maparray[half:mapsize:stepsize, half:mapsize:stepsize] = wibbledmean(square)
        dr = maparray[half:mapsize:stepsize, half:mapsize:stepsize]
        ul = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        top_sum = dr + np.roll(dr, 1, axis=0) + ul + np.roll(ul, -1, axis=1)
        left_sum = dr + np.roll(dr, 1, axis=1) + ul + np.roll(ul, -1, axis=0)
        maparray[0:mapsize:stepsize, half:mapsize:stepsize] = wibbledmean(top_sum)
        maparray[half:mapsize:stepsize, 0:mapsize:stepsize] = wibbledmean(left_sum)
        stepsize //= 2
        wibble /= wibbledecay
    maparray -= maparray.min()
    top = maparray.max()
    return maparray / top if top > 0 else maparray


def _plasma(h: int, w: int, wibbledecay: float, rng: np.random.Generator) -> np.ndarray:
    mapsize = 1 << max(1, math.ceil(math.log2(max(h, w, 2))))
    return plasma_fractal(mapsize, wibbledecay, rng)[:h, :w]


# --------------------------------------------------------------------------- noise


@CORRUPTIONS.register("gaussian_noise")
def gaussian_noise(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    c = [0.04, 0.06, 0.08, 0.09, 0.10][severity - 1]
    return img + rng.normal(size=img.shape, scale=c)


@CORRUPTIONS.register("shot_noise")
def shot_noise(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    c = [500, 250, 100, 75, 50][severity - 1]
    return rng.poisson(img * c) / c


@CORRUPTIONS.register("impulse_noise")
def impulse_noise(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    c = [0.01, 0.02, 0.03, 0.05, 0.07][severity - 1]
    out = img.copy()
    hit = rng.random(img.shape) < c
    salt = rng.random(img.shape) < 0.5
    out[hit & salt] = 1.0
    out[hit & ~salt] = 0.0
    return out


# --------------------------------------------------------------------------- blur


@CORRUPTIONS.register("defocus_blur")
def defocus_blur(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    radius, alias = [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)][severity - 1]
    kernel = _disk(radius * _scale(img), alias)
    return _per_channel(img, lambda ch: ndimage.convolve(ch, kernel, mode="mirror"))


@CORRUPTIONS.register("glass_blur")
def glass_blur(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    # CIFAR-10-C: (0.05,1,1) (0.25,1,1) (0.4,1,1) (0.25,1,2) (0.4,1,2); here sigma and the number
    # of shuffle passes both grow, so the severities are ordered (see the module docstring)
    sigma, delta, iterations = [(0.05, 1, 1), (0.1, 1, 2), (0.15, 1, 3), (0.2, 1, 4), (0.25, 1, 5)][severity - 1]
    s = _scale(img)
    sigma, delta = sigma * s, max(1, round(delta * s))
    out = _gaussian(img, sigma)
    h, w = img.shape[:2]
    # local shuffling: the original's sequential swaps, done on an index map (fast), applied once
    index = list(range(h * w))
    positions = [
        (y, x) for _ in range(iterations) for y in range(h - delta, delta, -1) for x in range(w - delta, delta, -1)
    ]
    if positions:
        offsets = rng.integers(-delta, delta, size=(len(positions), 2)).tolist()
        for (y, x), (dx, dy) in zip(positions, offsets, strict=True):
            a, b = y * w + x, (y + dy) * w + (x + dx)
            index[a], index[b] = index[b], index[a]
    out = out.reshape(h * w, -1)[np.asarray(index)].reshape(img.shape)
    return _gaussian(out, sigma)


@CORRUPTIONS.register("motion_blur")
def motion_blur(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    radius, sigma = [(10, 1), (10, 1.5), (10, 2), (10, 2.5), (12, 3)][severity - 1]
    s = _scale(img)
    return _motion_blur(img, math.ceil(radius * s), sigma * s, rng.uniform(-45, 45))


@CORRUPTIONS.register("zoom_blur")
def zoom_blur(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    top = [1.06, 1.11, 1.16, 1.21, 1.26][severity - 1]
    factors = np.arange(1, top, 0.01)
    out = img.copy()
    for factor in factors:
        out += _zoom_about_centre(img, float(factor))
    return out / (len(factors) + 1)


# --------------------------------------------------------------------------- weather


@CORRUPTIONS.register("snow")
def snow(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    loc, scale, zoom, threshold, radius, sigma, blend = [
        (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
        (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
        (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
        (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
    ][severity - 1]
    h, w = img.shape[:2]
    s, k = _scale(img), _supersampling(img)
    # the flake layer is drawn at k× the size (>= 32 px) with CIFAR-10-C's pixel values, then
    # box-averaged to the image: an 8×8 image gets a 32×32 snow layer's average, not 3-px-wide flakes
    layer = rng.normal(size=(h * k, w * k, 1), loc=loc, scale=scale)
    layer = _zoom_about_centre(layer, zoom)
    layer[layer < threshold] = 0
    layer = _motion_blur(np.clip(layer, 0, 1), math.ceil(radius * s), sigma * s, rng.uniform(-135, -45))
    layer = _block_mean(layer, k)
    img = blend * img + (1 - blend) * np.maximum(img, _grey(img) * 1.5 + 0.5)
    return img + layer + np.rot90(layer, k=2)


def frost_texture(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A synthetic icy layer in [0, 1] (H×W): fractal haze plus thin branching crystals."""
    haze = _plasma(h, w, 1.6, rng)
    crystals = np.zeros((h, w))
    n = max(3, (h * w) // 40)
    for _ in range(n):
        length = int(rng.integers(max(2, min(h, w) // 4), max(3, min(h, w)) + 1))
        angle = rng.uniform(0, 2 * math.pi) + np.cumsum(rng.normal(0, 0.25, size=length))
        ys = rng.uniform(0, h) + np.cumsum(np.sin(angle))
        xs = rng.uniform(0, w) + np.cumsum(np.cos(angle))
        inside = (ys >= 0) & (ys <= h - 1) & (xs >= 0) & (xs <= w - 1)
        brightness = rng.uniform(0.5, 1.0) * np.linspace(1.0, 0.3, length)
        np.add.at(crystals, (np.round(ys[inside]).astype(int), np.round(xs[inside]).astype(int)), brightness[inside])
    crystals = ndimage.gaussian_filter(crystals, 0.5 * max(1.0, min(h, w) / 32.0), mode="wrap")
    if crystals.max() > 0:
        crystals /= crystals.max()
    return np.clip(0.65 * haze**1.5 + 0.7 * crystals, 0.0, 1.0)


@CORRUPTIONS.register("frost")
def frost(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    # CIFAR-10-C: (1, .2) (1, .3) (.9, .4) (.85, .4) (.75, .45) with photographs; the synthetic
    # layer is darker on average (mean about 0.3), so its weight is raised and keeps rising
    keep, amount = [(1, 0.25), (0.95, 0.35), (0.9, 0.45), (0.85, 0.55), (0.8, 0.65)][severity - 1]
    texture = frost_texture(img.shape[0], img.shape[1], rng)[..., None]
    tint = np.array([0.85, 0.93, 1.0]) if img.shape[2] == 3 else np.full(img.shape[2], 0.93)
    return keep * img + amount * texture * tint


@CORRUPTIONS.register("fog")
def fog(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    amount, decay = [(0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)][severity - 1]
    max_val = img.max()
    out = img + amount * _plasma(img.shape[0], img.shape[1], decay, rng)[..., None]
    return out * max_val / (max_val + amount)


@CORRUPTIONS.register("brightness")
def brightness(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    c = [0.05, 0.1, 0.15, 0.2, 0.3][severity - 1]
    value = img.max(axis=2, keepdims=True)  # HSV V; H and S are unchanged when RGB scales with V
    new_value = np.clip(value + c, 0, 1)
    scale = np.divide(new_value, value, out=np.ones_like(value), where=value > 0)
    return np.where(value > 0, img * scale, new_value)


# --------------------------------------------------------------------------- digital


@CORRUPTIONS.register("contrast")
def contrast(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    c = [0.75, 0.5, 0.4, 0.3, 0.15][severity - 1]
    means = img.mean(axis=(0, 1), keepdims=True)
    return (img - means) * c + means


@CORRUPTIONS.register("elastic_transform")
def elastic_transform(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    size = min(img.shape[0], img.shape[1])
    # (displacement alpha, its smoothing sigma, affine jitter), × image size. CIFAR-10-C's affine
    # jitter falls (.08 .07 .06 .05 .03) while the displacement grows, and the affine part
    # dominates, so its severities got weaker; here the jitter grows (.03 .. .07)
    alpha, sigma, affine = [(0, 0, 0.03), (0.05, 0.2, 0.04), (0.08, 0.06, 0.05), (0.1, 0.04, 0.06), (0.1, 0.03, 0.07)][
        severity - 1
    ]
    alpha, sigma, affine = alpha * size, sigma * size, affine * size
    h, w = img.shape[:2]
    # random affine: jitter three points around the centre (cv2.getAffineTransform + warpAffine)
    centre = np.array([h // 2, w // 2], dtype=np.float64)  # (row, col)
    half = size // 3
    src = np.array([centre + half, [centre[0] + half, centre[1] - half], centre - half])
    dst = src + rng.uniform(-affine, affine, size=src.shape)
    # solve dst = A @ src + t, then sample the input at the inverse map of each output pixel
    m = np.linalg.solve(np.c_[src, np.ones(3)], dst).T  # 2×3
    a_inv = np.linalg.inv(m[:, :2])
    offset = -a_inv @ m[:, 2]
    warped = _per_channel(img, lambda ch: ndimage.affine_transform(ch, a_inv, offset=offset, order=1, mode="mirror"))
    if alpha == 0:
        return warped
    dy = ndimage.gaussian_filter(rng.uniform(-1, 1, size=(h, w)), sigma, mode="reflect", truncate=3) * alpha
    dx = ndimage.gaussian_filter(rng.uniform(-1, 1, size=(h, w)), sigma, mode="reflect", truncate=3) * alpha
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    coords = [rows + dy, cols + dx]
    return _per_channel(warped, lambda ch: ndimage.map_coordinates(ch, coords, order=1, mode="reflect"))


@CORRUPTIONS.register("pixelate")
def pixelate(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    c = [0.95, 0.9, 0.85, 0.75, 0.65][severity - 1]
    h, w = img.shape[:2]
    small = (max(1, int(w * c)), max(1, int(h * c)))

    def one(ch: np.ndarray) -> np.ndarray:
        im = Image.fromarray(np.ascontiguousarray(ch, dtype=np.float32))
        return np.asarray(im.resize(small, Image.Resampling.BOX).resize((w, h), Image.Resampling.BOX), dtype=np.float64)

    return _per_channel(img, one)


@CORRUPTIONS.register("jpeg_compression")
def jpeg_compression(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    quality = [80, 65, 58, 50, 40][severity - 1]
    u8 = np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)
    pil = Image.fromarray(np.ascontiguousarray(u8[..., 0] if img.shape[2] == 1 else u8[..., :3]))
    buf = io.BytesIO()
    pil.save(buf, "JPEG", quality=quality)
    buf.seek(0)
    with Image.open(buf) as decoded:
        out = np.asarray(decoded, dtype=np.float64) / 255.0
    return out[..., None] if out.ndim == 2 else out


# --------------------------------------------------------------------------- entry point


def check_severity(severity: int) -> int:
    if int(severity) not in SEVERITIES or int(severity) != severity:
        raise ConfigError(f"corruption severity must be one of 1..5, got {severity!r}")
    return int(severity)


def corrupt(x: np.ndarray, name: str, severity: int, seed: int = 0, start_index: int = 0) -> np.ndarray:
    """Corrupt a float32 NCHW batch in [0, 1]; same shape/dtype out, clipped to [0, 1]."""
    fn = CORRUPTIONS.get(name)
    severity = check_severity(severity)
    x = np.asarray(x)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ConfigError(f"corrupt() needs NCHW images with 1 or 3 channels, got shape {x.shape}")
    name_id = zlib.crc32(name.encode())
    out = np.empty(x.shape, dtype=np.float32)
    for i in range(x.shape[0]):
        rng = np.random.default_rng([int(seed), name_id, int(start_index) + i])
        img = np.transpose(x[i], (1, 2, 0)).astype(np.float64)
        result = np.asarray(fn(img, severity, rng), dtype=np.float64)
        if result.shape != img.shape:  # a bug in a corruption, not a user error
            raise RuntimeError(f"corruption {name} returned shape {result.shape} for an image of shape {img.shape}")
        out[i] = np.clip(result, 0.0, 1.0).transpose(2, 0, 1)
    return out


def corruption_names(selection: str | Sequence[str] = "all") -> list[str]:
    """``"all"`` → the 15 in ImageNet-C's order; otherwise the names given, checked."""
    if isinstance(selection, str):
        if selection == "all":
            return list(ALL_CORRUPTIONS)
        selection = [selection]
    for name in selection:
        CORRUPTIONS.get(name)
    return list(selection)


__all__ = [
    "ALL_CORRUPTIONS",
    "CORRUPTIONS",
    "SEVERITIES",
    "corrupt",
    "corruption_names",
    "frost_texture",
    "plasma_fractal",
]
