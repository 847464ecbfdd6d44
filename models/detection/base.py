"""Detector spec strings → objects that turn RGB images into COCO-style boxes.

Why one small interface: the robustness evaluation (COCO-O style: the same categories
under distribution shift) runs very different detectors — a face cascade, MTCNN, torchvision
and transformers models — over the same images and scores them with the same COCO AP, so
every backend answers in the dataset's own category ids and COCO ``xywh`` pixel boxes.

A detector is named by the registry's spec grammar (``trustflow.registry``)::

    mtcnn
    mtcnn?min_face_size=40&label_map=face:person
    haar?cascade=haarcascade_frontalface_alt2.xml&min_neighbors=5
    torchvision:fasterrcnn_resnet50_fpn_v2?weights=/w/frcnn_v2.pth&device=cuda
    torchvision:ssdlite320_mobilenet_v3_large?num_classes=3&labels=cat,dog&weights=/w/ft.pt
    hf:/models/detr-resnet-50?score_threshold=0.01

``NAME:TARGET`` is shorthand for ``NAME?target=TARGET`` (an architecture for
``torchvision``, a directory for ``hf``); a backend that takes no target rejects it. Each
backend declares its options as a pydantic model (``DetectorOptions`` or
``TorchDetectorOptions`` subclasses): values arrive as strings and the model converts and
checks them; an empty value means the default. Every backend accepts ``label_map`` (see
``label_map.py``).

Adding a backend is one module in this package: an options model, a detector class, and a
``@DETECTORS.register("name", options=...)`` builder ``(options, categories) -> Detector``.
Builders load weights, so the registry has no factory: ``load_detector`` builds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np
from pydantic import BeforeValidator, ValidationError, ValidatorFunctionWrapHandler, field_validator, model_validator
from pydantic_core import PydanticCustomError

from trustflow.errors import ConfigError, InputError
from trustflow.registry import TARGET, Options, Registry, parse_spec

OPTION_ERROR = "detector_option"  # the pydantic error type of a value this module checked itself


class DetectionBox(NamedTuple):
    """One detection: a dataset category id and a COCO ``xywh`` box in input-image pixels."""

    category_id: int
    x: float
    y: float
    w: float
    h: float
    score: float


@runtime_checkable
class Detector(Protocol):
    """What the inference stage needs: a name, a batch call, and the unmapped-drop counter."""

    name: str
    dropped_unmapped: int

    def detect(self, images: Sequence[np.ndarray]) -> list[list[DetectionBox]]:
        """H×W×3 uint8 RGB images of any sizes → one list of boxes per image, best first."""
        ...


DetectorBuilder = Callable[[Any, Mapping[int, str]], Detector]
"""``(validated options, dataset categories id → name) -> Detector``; loads the model."""

DETECTORS: Registry[DetectorBuilder] = Registry("detector", plugins="trustflow.models.detection")


class DetectorOptions(Options):
    """Options every backend takes; a bad value is reported with the value itself."""

    label_map: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _empty_means_default(cls, values: Any) -> Any:
        if isinstance(values, Mapping):
            return {k: v for k, v in values.items() if not (isinstance(v, str) and not v.strip())}
        return values

    @field_validator("*", mode="wrap")
    @classmethod
    def _name_the_value(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError as exc:
            first = exc.errors()[0]
            if first["type"] == OPTION_ERROR:
                raise PydanticCustomError(OPTION_ERROR, first["msg"]) from None
            raise PydanticCustomError(
                OPTION_ERROR, "{value} is invalid: {reason}", {"value": repr(value), "reason": first["msg"]}
            ) from None


class TorchDetectorOptions(DetectorOptions):
    """Options of the backends that run on torch: the device (``cpu``, ``cuda``, ``cuda:N``, ``auto``)."""

    device: str = "cpu"


def numbers(count: int, low: float, high: float) -> BeforeValidator:
    """A ``tuple[float, ...]`` option written ``a,b,c``: exactly ``count`` numbers in [low, high]."""

    def parse(value: Any) -> tuple[float, ...]:
        expected = f"{count} comma-separated numbers in [{low}, {high}]"
        parts = value.split(",") if isinstance(value, str) else value
        try:
            out = tuple(float(v) for v in parts)
        except (TypeError, ValueError):
            raise PydanticCustomError(
                OPTION_ERROR, "{value} is not {expected}", {"value": repr(value), "expected": expected}
            ) from None
        if len(out) != count or not all(low <= v <= high for v in out):
            raise PydanticCustomError(
                OPTION_ERROR, "{value} is not {expected}", {"value": repr(value), "expected": expected}
            )
        return out

    return BeforeValidator(parse)


def resolve_device(detector: str, value: str) -> str:
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (cuda when available) → a torch device string."""
    import torch

    if value == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(value)
    except (RuntimeError, ValueError):
        raise ConfigError(
            f"detector {detector!r}: option device={value!r} is not a torch device (cpu, cuda, cuda:N, auto)"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"detector {detector!r}: option device={value!r} but CUDA is not available here")
    return value


def load_detector(spec: str, categories: Mapping[int, str]) -> Detector:
    """Build the detector a spec names, answering in ``categories``' ids (id → dataset name).

    Fails at load time (``ConfigError``) on an unknown backend or option, or when none of the
    backend's labels maps to a dataset category — rather than producing zero detections."""
    parsed = parse_spec(spec, "detector spec")
    entry = DETECTORS.entry(parsed.name)
    if parsed.target is not None and TARGET not in entry.options.model_fields:
        raise ConfigError(f"detector {parsed.name!r} takes no ':<target>' / 'target' option")
    entry, options = DETECTORS.resolve(parsed)
    if not categories:
        raise ConfigError(f"detector spec {spec!r}: the dataset has no categories to map detections to")
    detector = entry.obj(options, dict(categories))
    detector.name = parsed.raw.strip()
    return detector


def to_boxes(
    labels: Mapping[int, int],
    native: Sequence[int] | np.ndarray,
    xyxy: np.ndarray,
    scores: Sequence[float] | np.ndarray,
    width: int,
    height: int,
) -> tuple[list[DetectionBox], int]:
    """Native-label xyxy detections → dataset-id xywh boxes, clipped to the image, best first.

    Returns the boxes and how many detections were dropped because their native label maps to
    no dataset category. Boxes wholly outside the image (empty after clipping) are dropped too,
    uncounted: they cannot match any ground truth. Clipping follows torchvision's practice, so
    the backends that do not clip (MTCNN) are scored like those that do."""
    xyxy = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    native = np.asarray(native).reshape(-1)
    if not (len(xyxy) == len(scores) == len(native)):
        raise InputError(f"detector output has {len(xyxy)} boxes, {len(scores)} scores, {len(native)} labels")
    x0 = np.clip(xyxy[:, 0], 0, width)
    y0 = np.clip(xyxy[:, 1], 0, height)
    x1 = np.clip(xyxy[:, 2], 0, width)
    y1 = np.clip(xyxy[:, 3], 0, height)
    out: list[DetectionBox] = []
    dropped = 0
    for i in np.argsort(-scores, kind="stable"):
        cat = labels.get(int(native[i]))
        if cat is None:
            dropped += 1
            continue
        w, h = float(x1[i] - x0[i]), float(y1[i] - y0[i])
        if w <= 0 or h <= 0 or not np.isfinite(scores[i]):
            continue
        out.append(DetectionBox(int(cat), float(x0[i]), float(y0[i]), w, h, float(scores[i])))
    return out, dropped


class MappedDetector:
    """Bookkeeping every backend shares: its name, label map and unmapped-drop counter."""

    def __init__(self, name: str, label_map: Mapping[int, int]) -> None:
        self.name = name
        self.label_map = dict(label_map)
        self.dropped_unmapped = 0

    def _boxes(
        self,
        native: Sequence[int] | np.ndarray,
        xyxy: np.ndarray,
        scores: Sequence[float] | np.ndarray,
        width: int,
        height: int,
    ) -> list[DetectionBox]:
        boxes, dropped = to_boxes(self.label_map, native, xyxy, scores, width, height)
        self.dropped_unmapped += dropped
        return boxes

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def check_images(images: Sequence[np.ndarray], detector: str) -> list[np.ndarray]:
    """Every image as a contiguous H×W×3 uint8 array; ``InputError`` naming the bad one."""
    out = []
    for i, img in enumerate(images):
        arr = np.asarray(img)
        if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8 or arr.shape[0] == 0 or arr.shape[1] == 0:
            raise InputError(f"detector {detector!r}: image {i} is {arr.dtype} {arr.shape}, expected H×W×3 uint8 RGB")
        out.append(np.ascontiguousarray(arr))
    return out


def groups_by_size(images: Sequence[np.ndarray], batch_size: int) -> list[list[int]]:
    """Indices of same-size images, in chunks of ``batch_size``.

    Why: MTCNN only batches equal sizes, and padding mixed sizes into one tensor changes what
    models that ignore the padding mask (YOLOS) see; equal-size groups need no padding."""
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, img in enumerate(images):
        by_shape.setdefault(tuple(img.shape), []).append(i)
    return [idx[j : j + batch_size] for idx in by_shape.values() for j in range(0, len(idx), batch_size)]


__all__ = [
    "DETECTORS",
    "DetectionBox",
    "Detector",
    "DetectorBuilder",
    "DetectorOptions",
    "MappedDetector",
    "TorchDetectorOptions",
    "check_images",
    "groups_by_size",
    "load_detector",
    "numbers",
    "resolve_device",
    "to_boxes",
]
