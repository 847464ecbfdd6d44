"""``torchvision:<arch>``: torchvision detection models, weights from a local file only.

Architectures: see ``ARCHS``. The model is always built with ``weights=None,
weights_backbone=None`` (nothing is downloaded), then its state dict is loaded from
``weights=PATH`` with ``torch.load(weights_only=True)`` — a plain state dict, or a dict
holding one under ``model`` / ``state_dict`` (torchvision's reference training scripts
save ``{"model": ...}``). Without ``weights`` the spec is refused unless ``random=1`` asks
for a randomly initialised model (seeded, for mechanics tests only: its boxes are noise).

Native labels: torchvision's label index *is* the COCO category id (1…90, with 11 unused
ids), named as in COCO's annotation files (``COCO_CATEGORY_NAMES``), so a COCO/COCO-O
dataset maps by exact name. A fine-tuned model says ``labels=a,b,c`` (names of labels 1…N-1;
0 is torchvision's background) and optionally ``num_classes=N`` (checked against the list).

Options: ``weights``, ``random``, ``num_classes``, ``labels``, ``score_threshold`` (default
0.001, COCO-eval practice: AP wants low-score detections too), ``max_detections`` (per image,
default 100 = COCO's maxDets), ``min_size`` / ``max_size`` (the resize of the R-CNN, RetinaNet
and FCOS transforms; torchvision's defaults otherwise), ``batch_size`` (default 4),
``device``, ``label_map``. Mask R-CNN runs whole; only its boxes are returned.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from trustflow.errors import ConfigError, InputError
from trustflow.models.detection.base import (
    DETECTORS,
    OPTION_ERROR,
    DetectionBox,
    MappedDetector,
    TorchDetectorOptions,
    check_images,
    resolve_device,
)
from trustflow.models.detection.label_map import build_label_map
from trustflow.models.weights_only import load_weights_only

# arch → the family, which decides the names of the score-threshold / max-detections kwargs
ARCHS: dict[str, str] = {
    "fasterrcnn_resnet50_fpn": "rcnn",
    "fasterrcnn_resnet50_fpn_v2": "rcnn",
    "fasterrcnn_mobilenet_v3_large_fpn": "rcnn",
    "fasterrcnn_mobilenet_v3_large_320_fpn": "rcnn",
    "maskrcnn_resnet50_fpn": "rcnn",
    "maskrcnn_resnet50_fpn_v2": "rcnn",
    "retinanet_resnet50_fpn": "dense",
    "retinanet_resnet50_fpn_v2": "dense",
    "fcos_resnet50_fpn": "dense",
    "ssd300_vgg16": "ssd",
    "ssdlite320_mobilenet_v3_large": "ssd",
}
_KWARGS = {
    "rcnn": ("box_score_thresh", "box_detections_per_img"),
    "dense": ("score_thresh", "detections_per_img"),
    "ssd": ("score_thresh", "detections_per_img"),
}

# COCO 2017 instance category ids → names, as in COCO's annotation files; torchvision's
# COCO-trained detectors predict these ids as label indices (ids 12, 26, 29, 30, 45, 66,
# 68, 69, 71, 83 are unused by COCO and never predicted by a trained model).
_COCO_NAMES_FROM_1: list[str | None] = [
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    None,
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    None,
    "backpack",
    "umbrella",
    None,
    None,
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    None,
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    None,
    "dining table",
    None,
    None,
    "toilet",
    None,
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    None,
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
]
COCO_CATEGORY_NAMES: dict[int, str] = {i: n for i, n in enumerate(_COCO_NAMES_FROM_1, start=1) if n is not None}
COCO_NUM_CLASSES = 91  # torchvision's head size for COCO: background + ids 1…90

_RANDOM_SEED = 0


class TorchvisionOptions(TorchDetectorOptions):
    target: str | None = Field(None, description="the architecture, one of ARCHS")
    weights: str | None = None
    random: bool = False
    num_classes: int | None = Field(None, ge=2)
    labels: str | None = None
    score_threshold: float = Field(0.001, ge=0.0, le=1.0)
    max_detections: int = Field(100, ge=1)
    min_size: int | None = Field(None, ge=1)
    max_size: int | None = Field(None, ge=1)
    batch_size: int = Field(4, ge=1)

    @field_validator("target")
    @classmethod
    def _known_arch(cls, arch: str | None) -> str | None:
        if arch is not None and arch not in ARCHS:
            raise PydanticCustomError(
                OPTION_ERROR,
                "unknown architecture {arch}; known: {known}",
                {"arch": repr(arch), "known": ", ".join(ARCHS)},
            )
        return arch


def read_state_dict(path: Path) -> dict[str, Any]:
    """A state dict from a weights-only file; ``InputError`` naming the file otherwise."""
    import torch

    if not path.is_file():
        raise InputError(f"{path}: weights file not found (option weights=)")
    payload = load_weights_only(
        path, accepted="a state dict of tensors (name → tensor, or one under 'model'/'state_dict')"
    )
    if isinstance(payload, dict) and not all(isinstance(v, torch.Tensor) for v in payload.values()):
        for key in ("model", "state_dict"):
            if isinstance(payload.get(key), dict):
                payload = payload[key]
                break
    if not isinstance(payload, dict) or not payload or not all(isinstance(v, torch.Tensor) for v in payload.values()):
        raise InputError(f"{path}: holds no state dict (expected name → tensor, or one under 'model'/'state_dict')")
    return payload


def native_labels(options: TorchvisionOptions) -> tuple[int, dict[int, str]]:
    """(num_classes, label index → name) from ``num_classes`` / ``labels``, COCO by default."""
    labels_text = options.labels
    num_classes = options.num_classes or 0
    if labels_text is None:
        if num_classes not in (0, COCO_NUM_CLASSES):
            raise ConfigError(
                f"detector 'torchvision': num_classes={num_classes} needs labels=name1,name2,… "
                f"(the names of labels 1…{num_classes - 1}; 0 is the background)"
            )
        return COCO_NUM_CLASSES, dict(COCO_CATEGORY_NAMES)
    names = [n.strip() for n in labels_text.split(",")]
    if not all(names):
        raise ConfigError(f"detector 'torchvision': option labels={labels_text!r} has an empty name")
    if num_classes and num_classes != len(names) + 1:
        raise ConfigError(
            f"detector 'torchvision': num_classes={num_classes} but labels names {len(names)} classes; "
            f"num_classes counts the background too, so it must be {len(names) + 1}"
        )
    return len(names) + 1, dict(enumerate(names, start=1))


class TorchvisionDetector(MappedDetector):
    def __init__(self, name: str, label_map: Mapping[int, int], model: Any, device: str, batch_size: int) -> None:
        super().__init__(name, label_map)
        self.model = model
        self.device = device
        self.batch_size = batch_size

    def detect(self, images: Sequence[np.ndarray]) -> list[list[DetectionBox]]:
        import torch

        images = check_images(images, self.name)
        results: list[list[DetectionBox]] = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            # the model's own transform normalises, resizes and batches mixed sizes, and maps
            # the boxes back to each input's pixels
            tensors = [torch.from_numpy(img).to(self.device).permute(2, 0, 1).float().div_(255.0) for img in chunk]
            with torch.inference_mode():
                outputs = self.model(tensors)
            for img, out in zip(chunk, outputs, strict=True):
                h, w = img.shape[:2]
                results.append(
                    self._boxes(
                        out["labels"].cpu().numpy(),
                        out["boxes"].float().cpu().numpy(),
                        out["scores"].float().cpu().numpy(),
                        w,
                        h,
                    )
                )
        return results


def build_model(
    arch: str, num_classes: int, family: str, score_threshold: float, max_detections: int, resize: dict[str, int]
) -> Any:
    """The architecture with no weights at all (nothing to download)."""
    from torchvision.models import detection

    score_key, max_key = _KWARGS[family]
    kwargs: dict[str, Any] = {score_key: score_threshold, max_key: max_detections, **resize}
    return getattr(detection, arch)(weights=None, weights_backbone=None, num_classes=num_classes, **kwargs)


@DETECTORS.register("torchvision", options=TorchvisionOptions)
def build_torchvision(options: TorchvisionOptions, categories: Mapping[int, str]) -> TorchvisionDetector:
    arch = options.target
    if arch is None:
        raise ConfigError(
            f"detector 'torchvision' needs an architecture: torchvision:<arch>, one of {', '.join(ARCHS)}"
        )
    family = ARCHS[arch]
    weights = options.weights
    num_classes, native = native_labels(options)
    score_threshold = options.score_threshold
    max_detections = options.max_detections
    resize = {key: value for key in ("min_size", "max_size") if (value := getattr(options, key)) is not None}
    if resize and family == "ssd":
        raise ConfigError(f"detector 'torchvision': {arch} has a fixed input size; min_size/max_size do not apply")
    device = resolve_device("torchvision", options.device)
    if weights is None and not options.random:
        raise ConfigError(
            f"detector 'torchvision:{arch}' needs weights=PATH (a local state dict); "
            "random=1 gives a randomly initialised model, for mechanics tests only"
        )
    if weights is not None and options.random:
        raise ConfigError(f"detector 'torchvision:{arch}': weights= and random=1 contradict each other")
    label_map = build_label_map(native, categories, options.label_map, f"torchvision:{arch}")

    import torch

    if weights is not None:
        path = Path(weights).expanduser()
        state = read_state_dict(path)
        model = build_model(arch, num_classes, family, score_threshold, max_detections, resize)
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            lines = str(exc).splitlines()
            raise InputError(
                f"{path}: state dict does not fit torchvision:{arch} with num_classes={num_classes}: "
                f"{' '.join(lines[:3])}"
            ) from None
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_RANDOM_SEED)
            model = build_model(arch, num_classes, family, score_threshold, max_detections, resize)
    model.to(device).eval()
    return TorchvisionDetector(f"torchvision:{arch}", label_map, model, device, options.batch_size)


__all__ = [
    "ARCHS",
    "COCO_CATEGORY_NAMES",
    "COCO_NUM_CLASSES",
    "TorchvisionDetector",
    "TorchvisionOptions",
    "build_torchvision",
    "native_labels",
    "read_state_dict",
]
