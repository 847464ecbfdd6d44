"""``hf:<dir>``: a transformers object detector (DETR, YOLOS, RT-DETR, …) from a local directory.

The directory holds what ``save_pretrained`` writes for the model and its image processor;
both load with ``local_files_only=True``, so nothing is ever fetched from a hub. Native labels
are the model config's ``id2label``. The processor prepares the inputs and its
``post_process_object_detection(outputs, threshold=..., target_sizes=...)`` turns the raw
outputs into xyxy boxes in each input image's pixels.

Images are batched only with others of the same size: padding mixed sizes into one tensor
would change what models that ignore the pixel mask (YOLOS) see.

Options: ``score_threshold`` (default 0.001, as for torchvision), ``max_detections`` (per
image, best first, default 100 = COCO's maxDets), ``batch_size`` (default 4), ``device``,
``label_map``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from trustflow.errors import ConfigError, InputError
from trustflow.models.detection.base import (
    DETECTORS,
    DetectionBox,
    MappedDetector,
    TorchDetectorOptions,
    check_images,
    groups_by_size,
    resolve_device,
)
from trustflow.models.detection.label_map import build_label_map


class HFOptions(TorchDetectorOptions):
    target: str | None = Field(None, description="the save_pretrained directory")
    score_threshold: float = Field(0.001, ge=0.0, le=1.0)
    max_detections: int = Field(100, ge=1)
    batch_size: int = Field(4, ge=1)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_hf(path: Path) -> tuple[Any, Any]:
    """(model, image processor) from a local directory; ``InputError`` naming it otherwise."""
    if not path.is_dir():
        raise InputError(f"{path}: not a directory (detector spec hf:<dir> wants a save_pretrained directory)")
    if not (path / "config.json").is_file():
        raise InputError(f"{path}: no config.json (detector spec hf:<dir> wants a save_pretrained directory)")
    from transformers import AutoImageProcessor, AutoModelForObjectDetection

    try:
        model = AutoModelForObjectDetection.from_pretrained(str(path), local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - unknown model types, missing weights, non-detection configs
        raise InputError(f"{path}: not a transformers object-detection model ({_first_line(exc)})") from None
    try:
        processor = AutoImageProcessor.from_pretrained(str(path), local_files_only=True)
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"{path}: no usable image processor config ({_first_line(exc)})") from None
    if not hasattr(processor, "post_process_object_detection"):
        raise InputError(f"{path}: the image processor {type(processor).__name__} has no post_process_object_detection")
    return model, processor


class HFDetector(MappedDetector):
    def __init__(
        self,
        name: str,
        label_map: Mapping[int, int],
        model: Any,
        processor: Any,
        device: str,
        score_threshold: float,
        max_detections: int,
        batch_size: int,
    ) -> None:
        super().__init__(name, label_map)
        self.model = model
        self.processor = processor
        self.device = device
        self.score_threshold = score_threshold
        self.max_detections = max_detections
        self.batch_size = batch_size

    def detect(self, images: Sequence[np.ndarray]) -> list[list[DetectionBox]]:
        import torch

        images = check_images(images, self.name)
        results: list[list[DetectionBox]] = [[] for _ in images]
        for group in groups_by_size(images, self.batch_size):
            batch = [images[i] for i in group]
            inputs = self.processor(images=batch, return_tensors="pt")
            inputs = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
            sizes = [img.shape[:2] for img in batch]
            with torch.inference_mode():
                outputs = self.model(**inputs)
                found = self.processor.post_process_object_detection(
                    outputs, threshold=self.score_threshold, target_sizes=[(int(h), int(w)) for h, w in sizes]
                )
            for i, (h, w), out in zip(group, sizes, found, strict=True):
                boxes = self._boxes(
                    out["labels"].cpu().numpy(),
                    out["boxes"].float().cpu().numpy(),
                    out["scores"].float().cpu().numpy(),
                    w,
                    h,
                )
                results[i] = boxes[: self.max_detections]  # best first, so this keeps the top ones
        return results


@DETECTORS.register("hf", options=HFOptions)
def build_hf(options: HFOptions, categories: Mapping[int, str]) -> HFDetector:
    target = options.target
    if target is None:
        raise ConfigError("detector 'hf' needs a directory: hf:<dir> (what save_pretrained wrote)")
    device = resolve_device("hf", options.device)
    path = Path(target).expanduser()
    model, processor = load_hf(path)
    id2label = getattr(model.config, "id2label", None) or {}
    native = {int(k): str(v) for k, v in id2label.items()}
    label_map = build_label_map(native, categories, options.label_map, f"hf:{target}")
    model.to(device).eval()
    return HFDetector(
        f"hf:{target}",
        label_map,
        model,
        processor,
        device,
        options.score_threshold,
        options.max_detections,
        options.batch_size,
    )


__all__ = ["HFDetector", "HFOptions", "build_hf", "load_hf"]
