"""Object/face detectors for COCO-O style robustness evaluation, behind one spec string.

``load_detector(spec, categories)`` builds any backend — ``mtcnn``, ``haar``,
``torchvision:<arch>``, ``hf:<dir>`` — answering in the dataset's category ids and COCO
``xywh`` pixel boxes; see ``base.py`` for the spec grammar and ``label_map.py`` for how a
backend's labels become dataset categories. Importing this package registers every backend
without importing torch, OpenCV or transformers: each backend imports its library when built.
"""

from trustflow.models.detection import haar, hf_det, mtcnn, torchvision_det  # noqa: F401  (registers the backends)
from trustflow.models.detection.base import (
    DETECTORS,
    DetectionBox,
    Detector,
    DetectorSpec,
    MappedDetector,
    Options,
    load_detector,
    parse_detector_spec,
)
from trustflow.models.detection.label_map import build_label_map, parse_label_map

__all__ = [
    "DETECTORS",
    "DetectionBox",
    "Detector",
    "DetectorSpec",
    "MappedDetector",
    "Options",
    "build_label_map",
    "load_detector",
    "parse_detector_spec",
    "parse_label_map",
]
