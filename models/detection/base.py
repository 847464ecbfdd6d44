"""Detector spec strings → objects that turn RGB images into COCO-style boxes.

Why one small interface: the robustness evaluation (COCO-O style: the same categories
under distribution shift) runs very different detectors — a face cascade, MTCNN, torchvision
and transformers models — over the same images and scores them with the same COCO AP, so
every backend answers in the dataset's own category ids and COCO ``xywh`` pixel boxes.

Spec grammar (URL-query style, like the classifier specs in ``models/vision/spec.py``)::

    spec    := backend [ "?" option { "&" option } ]
    backend := NAME                    a registered detector:       mtcnn, haar
             | NAME ":" TARGET         the same, with a target:     torchvision:ssd300_vgg16, hf:/models/detr
    option  := KEY "=" VALUE

Examples::

    mtcnn
    mtcnn?min_face_size=40&label_map=face:person
    haar?cascade=haarcascade_frontalface_alt2.xml&min_neighbors=5
    torchvision:fasterrcnn_resnet50_fpn_v2?weights=/w/frcnn_v2.pth&device=cuda
    torchvision:ssdlite320_mobilenet_v3_large?num_classes=3&labels=cat,dog&weights=/w/ft.pt
    hf:/models/detr-resnet-50?score_threshold=0.01

``NAME:TARGET`` is shorthand for ``NAME?target=TARGET`` (the target is an architecture for
``torchvision``, a directory for ``hf``); a backend that takes no target rejects it. The
backend name is everything before the first ``:`` or ``?``; the query is everything after
the first ``?``, split on ``&``, each part split on its first ``=`` — so values may hold
``:``, ``,`` and ``=`` but not ``&``. Values stay strings; each backend converts and checks
its own options (an empty value means the default), and an unknown option is a
``ConfigError`` naming it and listing the valid ones. Every backend accepts ``label_map`` (see ``label_map.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np

from trustflow.errors import ConfigError, InputError
from trustflow.registry import Registry

TARGET_OPTION = "target"
COMMON_OPTIONS = ("label_map",)


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


DetectorFactory = Callable[[dict[str, str], Mapping[int, str]], Detector]
DETECTORS: Registry[DetectorFactory] = Registry("detector")


@dataclass(frozen=True)
class DetectorSpec:
    name: str
    options: dict[str, str] = field(default_factory=dict)
    raw: str = ""


def parse_detector_spec(spec: str) -> DetectorSpec:
    """Split a spec string (grammar in the module docstring); ``ConfigError`` when malformed."""
    raw = spec
    spec = spec.strip()
    if not spec:
        raise ConfigError("empty detector spec")
    head, _, query = spec.partition("?")
    name, colon, target = head.partition(":")
    name = name.strip()
    if not name:
        raise ConfigError(f"bad detector spec {raw!r}: no detector name before ':' or '?'")
    options: dict[str, str] = {}
    if colon:
        if not target.strip():
            raise ConfigError(f"bad detector spec {raw!r}: nothing after '{name}:'")
        options[TARGET_OPTION] = target.strip()
    for part in filter(None, query.split("&")):
        key, eq, value = part.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ConfigError(f"bad detector spec {raw!r}: option {part!r} is not key=value")
        if key in options:
            what = f"'{name}:<target>' and option 'target'" if key == TARGET_OPTION else f"option {key!r}"
            raise ConfigError(f"bad detector spec {raw!r}: {what} given twice")
        options[key] = value.strip()
    return DetectorSpec(name, options, raw)


def _register_builtin_backends() -> None:
    """Import the backend modules so their ``@DETECTORS.register`` lines have run."""
    import trustflow.models.detection  # noqa: F401  (the package imports every backend)


def load_detector(spec: str, categories: Mapping[int, str]) -> Detector:
    """Build the detector a spec names, answering in ``categories``' ids (id → dataset name).

    Fails at load time (``ConfigError``) on an unknown backend or option, or when none of the
    backend's labels maps to a dataset category — rather than producing zero detections."""
    parsed = parse_detector_spec(spec)
    _register_builtin_backends()
    factory = DETECTORS.get(parsed.name)
    if not categories:
        raise ConfigError(f"detector spec {spec!r}: the dataset has no categories to map detections to")
    detector = factory(dict(parsed.options), dict(categories))
    detector.name = parsed.raw.strip()
    return detector


class Options:
    """A backend's options: unknown keys rejected up front, typed getters that name the key.

    Why declared up front: the error for a typo can then list every valid option, and no
    option is silently ignored because a getter was never reached."""

    def __init__(self, detector: str, raw: Mapping[str, str], valid: Iterable[str], takes_target: bool = False) -> None:
        self.detector = detector
        self.raw = dict(raw)
        self.valid = tuple(valid) + COMMON_OPTIONS + ((TARGET_OPTION,) if takes_target else ())
        for key in self.raw:
            if key in self.valid:
                continue
            if key == TARGET_OPTION:
                raise ConfigError(f"detector {detector!r} takes no ':<target>' / 'target' option")
            listed = ", ".join(k for k in self.valid if k != TARGET_OPTION)
            raise ConfigError(f"detector {detector!r}: unknown option {key!r}; valid options: {listed}")

    def _get(self, key: str) -> str | None:
        if key not in self.valid:
            raise AssertionError(f"option {key!r} not declared for detector {self.detector!r}")
        value = self.raw.get(key)
        return value or None  # an empty value means the default

    def invalid(self, key: str, value: str, expected: str) -> ConfigError:
        return ConfigError(f"detector {self.detector!r}: option {key}={value!r} is not {expected}")

    def text(self, key: str, default: str | None = None) -> str | None:
        value = self._get(key)
        return default if value is None else value

    def integer(self, key: str, default: int, minimum: int | None = None) -> int:
        value = self._get(key)
        if value is None:
            return default
        try:
            out = int(value)
        except ValueError:
            raise self.invalid(key, value, "an integer") from None
        if minimum is not None and out < minimum:
            raise self.invalid(key, value, f"an integer ≥ {minimum}")
        return out

    def number(self, key: str, default: float, low: float | None = None, high: float | None = None) -> float:
        value = self._get(key)
        if value is None:
            return default
        try:
            out = float(value)
        except ValueError:
            raise self.invalid(key, value, "a number") from None
        if not np.isfinite(out) or (low is not None and out < low) or (high is not None and out > high):
            raise self.invalid(
                key, value, f"a number in [{low if low is not None else '-inf'}, {high if high is not None else 'inf'}]"
            )
        return out

    def numbers(
        self, key: str, default: Sequence[float], count: int, low: float = -np.inf, high: float = np.inf
    ) -> list[float]:
        value = self._get(key)
        if value is None:
            return list(default)
        expected = f"{count} comma-separated numbers" + (
            f" in [{low}, {high}]" if np.isfinite([low, high]).any() else ""
        )
        try:
            out = [float(v) for v in value.split(",")]
        except ValueError:
            raise self.invalid(key, value, expected) from None
        if len(out) != count or not all(low <= v <= high for v in out):
            raise self.invalid(key, value, expected)
        return out

    def flag(self, key: str, default: bool) -> bool:
        value = self._get(key)
        if value is None:
            return default
        low = value.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise self.invalid(key, value, "a boolean (1/0, true/false)")

    def device(self, key: str = "device") -> str:
        """``cpu`` (default), ``cuda``, ``cuda:N`` or ``auto`` (cuda when available)."""
        value = self._get(key) or "cpu"
        import torch

        if value == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        try:
            device = torch.device(value)
        except (RuntimeError, ValueError):
            raise self.invalid(key, value, "a torch device (cpu, cuda, cuda:N, auto)") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"detector {self.detector!r}: option {key}={value!r} but CUDA is not available here")
        return value


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
    "COMMON_OPTIONS",
    "DETECTORS",
    "DetectionBox",
    "Detector",
    "DetectorFactory",
    "DetectorSpec",
    "MappedDetector",
    "Options",
    "TARGET_OPTION",
    "check_images",
    "groups_by_size",
    "load_detector",
    "parse_detector_spec",
    "to_boxes",
]
