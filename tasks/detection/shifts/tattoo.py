"""Tattoo domain: the scene inked in one colour on skin.

COCO-O's tattoos are photographs of skin with an object drawn on it: a single dark ink
(black, blue-black or green-black), line work for contours, solid fill or dot-work for dark
areas, and skin colour everywhere else. The shift keeps only what an ink drawing keeps:

* **line work** from a difference of Gaussians of the contrast-normalised grey image
  (XDoG-style thresholding gives clean, closed outlines rather than Canny's broken edges);
* **shading**: solid ink where the image is darkest and random dot-work (stippling) in the
  mid-tones, so shape and shadow survive without grey levels;
* **skin**: a drawn skin tone with blotchy low-frequency colour variation and pores; the ink
  is slightly blurred (it spreads under the skin) and not fully opaque.
"""

from __future__ import annotations

import cv2
import numpy as np

from trustflow.tasks.detection.shifts import DOMAIN_SHIFTS, size_scale, to_uint8

SKIN_TONES = np.array(
    [[0.93, 0.78, 0.68], [0.87, 0.69, 0.57], [0.80, 0.62, 0.49], [0.96, 0.84, 0.76], [0.70, 0.52, 0.40]],
    np.float32,
)
INKS = np.array([[0.08, 0.08, 0.10], [0.09, 0.11, 0.20], [0.08, 0.14, 0.12]], np.float32)


def skin(h: int, w: int, s: float, rng: np.random.Generator) -> np.ndarray:
    """H×W×3 float32 skin: one tone, blotchy redness, and fine pores."""
    tone = SKIN_TONES[int(rng.integers(len(SKIN_TONES)))]
    blotch: np.ndarray = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), max(2.0, 18.0 * s))
    blotch /= max(1e-6, float(blotch.std()))
    pores = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), max(0.4, 0.7 * s))
    redness = np.array([0.03, -0.012, -0.018], np.float32)
    out = tone * (1.0 + 0.035 * pores[..., None]) + redness * blotch[..., None]
    # the limb curves away from the light: a gentle brightness ramp across the image
    ramp = np.linspace(1.03, rng.uniform(0.88, 0.97), w, dtype=np.float32)
    return out * (ramp if rng.random() < 0.5 else ramp[::-1])[None, :, None]


@DOMAIN_SHIFTS.register("tattoo")
def tattoo(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    s = size_scale(img)
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    tiles = max(1, int(round(min(h, w) / 60)))
    grey = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(tiles, tiles)).apply(grey)
    g = grey.astype(np.float32) / 255.0

    # line work: thresholded difference of Gaussians (dark side of edges)
    sigma = max(0.5, rng.uniform(1.0, 1.4) * s)
    dog = cv2.GaussianBlur(g, (0, 0), sigma) - cv2.GaussianBlur(g, (0, 0), 1.6 * sigma)
    lines = np.clip(-(dog + 0.004) * 45.0, 0.0, 1.0)

    # shading: solid ink in the darkest areas, dot-work in the mid-tones
    darkness = 1.0 - cv2.GaussianBlur(g, (0, 0), max(0.5, 1.5 * s))
    solid = np.clip((darkness - 0.72) * 12.0, 0.0, 1.0)
    dots = (rng.random((h, w), dtype=np.float32) < np.clip((darkness - 0.45) * 1.2, 0.0, 0.5)).astype(np.float32)
    ink = np.maximum(np.maximum(lines, solid), 0.85 * dots)
    ink = cv2.GaussianBlur(ink, (0, 0), max(0.3, 0.6 * s))  # ink spreads under the skin

    colour = INKS[int(rng.integers(len(INKS)))]
    opacity = rng.uniform(0.8, 0.92)
    base = skin(h, w, s, rng)
    a = (opacity * ink)[..., None]
    out = base * (1.0 - a) + colour * a
    return to_uint8(out)
