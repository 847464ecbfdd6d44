"""``haar``: OpenCV's Viola–Jones Haar cascade (the cascades ship with opencv-python).

Options: ``cascade`` (a file name in ``cv2.data.haarcascades`` or a path; default
``haarcascade_frontalface_default.xml``), ``scale_factor`` (default 1.1), ``min_neighbors``
(default 3), ``min_size`` (px; default 0 = the cascade's own window), ``native_label``
(default ``face``; say e.g. ``fullbody`` when using a body cascade), ``label_map``.

Scores: a cascade has no probability. ``detectMultiScale3(..., outputRejectLevels=True)``
gives each detection the last stage's *level weight* (the stage sum minus its threshold: the
margin by which the window passed). It is mapped through the logistic ``1 / (1 + e^-w)``:
monotonic, so COCO AP gets the detector's own ranking; it is not a calibrated probability.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from trustflow.errors import ConfigError
from trustflow.models.detection.base import DETECTORS, DetectionBox, DetectorOptions, MappedDetector, check_images
from trustflow.models.detection.label_map import build_label_map

DEFAULT_CASCADE = "haarcascade_frontalface_default.xml"


class HaarOptions(DetectorOptions):
    cascade: str = DEFAULT_CASCADE
    scale_factor: float = Field(1.1, ge=1.001, le=3.0)
    min_neighbors: int = Field(3, ge=0)
    min_size: int = Field(0, ge=0)
    native_label: str = "face"


def level_weight_score(weights: np.ndarray) -> np.ndarray:
    """Level weights → (0, 1), monotonically (a logistic; clipped so it never overflows)."""
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(weights, dtype=np.float64), -50.0, 50.0)))


def cascade_dir() -> Path:
    """The folder of the cascades that ship with opencv-python."""
    import cv2

    return Path(cv2.data.haarcascades)  # type: ignore[attr-defined]  # cv2.data ships with opencv-python; its stubs omit it


def resolve_cascade(name: str) -> Path:
    """A bare file name is looked up in OpenCV's cascade folder first, anything else is a path."""
    path = Path(name).expanduser()
    bundled = cascade_dir() / name
    if os.sep not in name and bundled.is_file():
        path = bundled
    if not path.is_file():
        known = sorted(p.name for p in cascade_dir().glob("*.xml"))
        raise ConfigError(
            f"detector 'haar': option cascade={name!r} is neither a file nor one of OpenCV's cascades: "
            f"{', '.join(known)}"
        )
    return path


class HaarDetector(MappedDetector):
    def __init__(
        self,
        name: str,
        label_map: Mapping[int, int],
        cascade: Any,
        scale_factor: float,
        min_neighbors: int,
        min_size: int,
    ) -> None:
        super().__init__(name, label_map)
        self.cascade = cascade
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size

    def detect(self, images: Sequence[np.ndarray]) -> list[list[DetectionBox]]:
        import cv2

        results = []
        for img in check_images(images, self.name):
            grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
            rects, _levels, weights = self.cascade.detectMultiScale3(
                grey,
                scaleFactor=self.scale_factor,
                minNeighbors=self.min_neighbors,
                minSize=(self.min_size, self.min_size),
                outputRejectLevels=True,
            )
            rects = np.asarray(rects, dtype=np.float64).reshape(-1, 4)
            xyxy = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1)
            scores = level_weight_score(np.asarray(weights).reshape(-1))
            h, w = img.shape[:2]
            results.append(self._boxes(np.zeros(len(rects), dtype=np.int64), xyxy, scores, w, h))
        return results


@DETECTORS.register("haar", options=HaarOptions)
def build_haar(options: HaarOptions, categories: Mapping[int, str]) -> HaarDetector:
    label_map = build_label_map({0: options.native_label}, categories, options.label_map, "haar")

    import cv2

    path = resolve_cascade(options.cascade)
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise ConfigError(
            f"detector 'haar': option cascade={options.cascade!r}: {path} is not a cascade OpenCV can load"
        )
    return HaarDetector("haar", label_map, cascade, options.scale_factor, options.min_neighbors, options.min_size)


__all__ = ["DEFAULT_CASCADE", "HaarDetector", "HaarOptions", "build_haar", "level_weight_score", "resolve_cascade"]
