"""``scripted``: a detector for load tests — deterministic boxes from the pixels, no model.

Scale work (issue 22) runs the detection pipeline on 100,000 images on a laptop, where a
real detector's own cost (even the Haar cascade's) would hide what is being measured: the
Ray Data read, filter and actor stages, the Parquet parts, the commit, the scoring and the
leaderboard. ``scripted`` costs a few microseconds per image. It is a load generator, never a
result, like ``scripted:`` LLM targets (models/llm/scripted.py); its mAP means nothing.

What it answers, as a pure function of the pixels: one box around the pixels brighter than
``threshold`` (grey level; none when no pixel is), scored by a hash of the image, then
``extra`` boxes placed and scored by that hash. So reruns, batch sizes and worker counts
all agree, and a set whose objects are bright patches on a darker ground (the scale
benchmark's) gets a non-trivial AP to score.

Options: ``threshold`` (0–255, default 200), ``extra`` (default 1), ``native_label``
(default ``face``), ``label_map``.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence

import numpy as np
from pydantic import Field

from trustflow.models.detection.base import DETECTORS, DetectionBox, DetectorOptions, MappedDetector, check_images
from trustflow.models.detection.label_map import build_label_map


class ScriptedOptions(DetectorOptions):
    threshold: int = Field(200, ge=0, le=255)
    extra: int = Field(1, ge=0, le=100)
    native_label: str = "face"


class ScriptedDetector(MappedDetector):
    def __init__(self, name: str, label_map: Mapping[int, int], threshold: int, extra: int) -> None:
        super().__init__(name, label_map)
        self.threshold = threshold
        self.extra = extra

    def detect(self, images: Sequence[np.ndarray]) -> list[list[DetectionBox]]:
        results = []
        for img in check_images(images, self.name):
            h, w = img.shape[:2]
            rng = np.random.default_rng(zlib.crc32(img[::4, ::4].tobytes()))
            grey = img.max(axis=2)
            ys, xs = np.nonzero(grey > self.threshold)
            boxes = []
            if len(xs):
                boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
            for _ in range(self.extra):
                x0, y0 = rng.uniform(0, w * 0.8), rng.uniform(0, h * 0.8)
                boxes.append([x0, y0, x0 + rng.uniform(4, w * 0.2), y0 + rng.uniform(4, h * 0.2)])
            xyxy = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
            scores = rng.uniform(0.05, 1.0, len(xyxy))
            results.append(self._boxes(np.zeros(len(xyxy), dtype=np.int64), xyxy, scores, w, h))
        return results


@DETECTORS.register("scripted", options=ScriptedOptions)
def build_scripted(options: ScriptedOptions, categories: Mapping[int, str]) -> ScriptedDetector:
    label_map = build_label_map({0: options.native_label}, categories, options.label_map, "scripted")
    return ScriptedDetector("scripted", label_map, options.threshold, options.extra)


__all__ = ["ScriptedDetector", "ScriptedOptions", "build_scripted"]
