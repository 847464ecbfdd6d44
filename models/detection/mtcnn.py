"""``mtcnn``: facenet-pytorch's MTCNN face detector (weights ship inside the package).

Options: ``min_face_size`` (px, default 20), ``thresholds`` (the three cascade stages' score
thresholds, default ``0.6,0.7,0.7``), ``factor`` (image-pyramid scale step, default 0.709),
``score_threshold`` (final score kept, default 0.0: AP needs the whole ranking, and the last
stage threshold already bounds it), ``batch_size`` (default 8), ``device``, ``label_map``.
Native label: ``face``.

MTCNN only batches equal-size images, so a batch is split into same-size groups.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from trustflow.models.detection.base import (
    DETECTORS,
    DetectionBox,
    MappedDetector,
    Options,
    check_images,
    groups_by_size,
)
from trustflow.models.detection.label_map import build_label_map

NATIVE_LABELS = {0: "face"}
OPTIONS = ("min_face_size", "thresholds", "factor", "score_threshold", "batch_size", "device")


class MTCNNDetector(MappedDetector):
    def __init__(
        self, name: str, label_map: Mapping[int, int], model: Any, score_threshold: float, batch_size: int
    ) -> None:
        super().__init__(name, label_map)
        self.model = model
        self.score_threshold = score_threshold
        self.batch_size = batch_size

    def detect(self, images: Sequence[np.ndarray]) -> list[list[DetectionBox]]:
        import torch

        images = check_images(images, self.name)
        results: list[list[DetectionBox]] = [[] for _ in images]
        for group in groups_by_size(images, self.batch_size):
            with torch.inference_mode():
                batch_boxes, batch_probs = self.model.detect(np.stack([images[i] for i in group]))
            for i, boxes, probs in zip(group, batch_boxes, batch_probs):
                if boxes is None:
                    continue
                xyxy = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
                scores = np.asarray(probs, dtype=np.float64).reshape(-1)
                keep = scores >= self.score_threshold
                h, w = images[i].shape[:2]
                results[i] = self._boxes(np.zeros(int(keep.sum()), dtype=np.int64), xyxy[keep], scores[keep], w, h)
        return results


@DETECTORS.register("mtcnn")
def build_mtcnn(options: dict[str, str], categories: Mapping[int, str]) -> MTCNNDetector:
    opts = Options("mtcnn", options, OPTIONS)
    min_face_size = opts.integer("min_face_size", 20, minimum=1)
    thresholds = opts.numbers("thresholds", (0.6, 0.7, 0.7), 3, low=0.0, high=1.0)
    factor = opts.number("factor", 0.709, low=0.1, high=0.99)
    score_threshold = opts.number("score_threshold", 0.0, low=0.0, high=1.0)
    batch_size = opts.integer("batch_size", 8, minimum=1)
    device = opts.device()
    label_map = build_label_map(NATIVE_LABELS, categories, opts.text("label_map"), "mtcnn")

    from facenet_pytorch import MTCNN

    model = MTCNN(
        min_face_size=min_face_size,
        thresholds=thresholds,
        factor=factor,
        keep_all=True,
        select_largest=False,
        post_process=False,
        device=device,
    )
    model.eval()
    return MTCNNDetector("mtcnn", label_map, model, score_threshold, batch_size)


__all__ = ["MTCNNDetector", "build_mtcnn"]
