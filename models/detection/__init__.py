"""Object/face detectors for COCO-O style robustness evaluation, behind one spec string.

``load_detector(spec, categories)`` builds any backend — ``mtcnn``, ``haar``,
``torchvision:<arch>``, ``hf:<dir>`` — answering in the dataset's category ids and COCO
``xywh`` pixel boxes; see ``base.py`` for the options and ``label_map.py`` for how a
backend's labels become dataset categories. The backend modules of this package register
themselves in ``DETECTORS`` on its first lookup, without importing torch, OpenCV or
transformers: each backend imports its library when built.
"""

from trustflow.models.detection.base import (
    DETECTORS,
    DetectionBox,
    Detector,
    DetectorOptions,
    MappedDetector,
    TorchDetectorOptions,
    load_detector,
)
from trustflow.models.detection.label_map import build_label_map, parse_label_map

__all__ = [
    "DETECTORS",
    "DetectionBox",
    "Detector",
    "DetectorOptions",
    "MappedDetector",
    "TorchDetectorOptions",
    "build_label_map",
    "load_detector",
    "parse_label_map",
]
