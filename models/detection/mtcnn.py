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
from typing import Annotated, Any

import numpy as np
from pydantic import Field

from trustflow.models.detection.base import (
    DETECTORS,
    DetectionBox,
    MappedDetector,
    TorchDetectorOptions,
    check_images,
    groups_by_size,
    numbers,
    resolve_device,
)
from trustflow.models.detection.label_map import build_label_map

NATIVE_LABELS = {0: "face"}


class MTCNNOptions(TorchDetectorOptions):
    min_face_size: int = Field(20, ge=1)
    thresholds: Annotated[tuple[float, float, float], numbers(3, 0.0, 1.0)] = (0.6, 0.7, 0.7)
    factor: float = Field(0.709, ge=0.1, le=0.99)
    score_threshold: float = Field(0.0, ge=0.0, le=1.0)
    batch_size: int = Field(8, ge=1)


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
            for i, boxes, probs in zip(group, batch_boxes, batch_probs, strict=True):
                if boxes is None:
                    continue
                xyxy = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
                scores = np.asarray(probs, dtype=np.float64).reshape(-1)
                keep = scores >= self.score_threshold
                h, w = images[i].shape[:2]
                results[i] = self._boxes(np.zeros(int(keep.sum()), dtype=np.int64), xyxy[keep], scores[keep], w, h)
        return results


@DETECTORS.register("mtcnn", options=MTCNNOptions)
def build_mtcnn(options: MTCNNOptions, categories: Mapping[int, str]) -> MTCNNDetector:
    device = resolve_device("mtcnn", options.device)
    label_map = build_label_map(NATIVE_LABELS, categories, options.label_map, "mtcnn")

    from facenet_pytorch import MTCNN

    model = MTCNN(
        min_face_size=options.min_face_size,
        thresholds=list(options.thresholds),
        factor=options.factor,
        keep_all=True,
        select_largest=False,
        post_process=False,
        device=device,
    )
    model.eval()
    return MTCNNDetector("mtcnn", label_map, model, options.score_threshold, options.batch_size)


__all__ = ["MTCNNDetector", "MTCNNOptions", "build_mtcnn"]
