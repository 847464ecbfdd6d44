"""Detector backends: spec parsing, label mapping, and each backend on real or tiny models.

MTCNN and the Haar cascade run their real bundled weights on scikit-image's astronaut photo;
torchvision and transformers run tiny randomly initialised models (nothing can be
downloaded), which checks the mechanics — shapes, coordinates, ids, weight loading — not
accuracy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trustflow.errors import ConfigError, InputError
from trustflow.models.detection import (
    DETECTORS,
    DetectionBox,
    Detector,
    build_label_map,
    load_detector,
)
from trustflow.models.detection.base import to_boxes
from trustflow.models.detection.haar import level_weight_score
from trustflow.models.detection.torchvision_det import COCO_CATEGORY_NAMES
from trustflow.registry import parse_spec as parse_detector_spec

# The astronaut's face in skimage.data.astronaut() (512×512), COCO xywh. Obtained once by
# reading pixel coordinates off a 2× enlarged crop with a 10/50 px grid drawn on it: cheek to
# cheek x ≈ 175–270, hairline to chin y ≈ 65–175. (MTCNN answers ≈ 181,62–268,172; the
# Haar cascade 177,66–272,161: IoU ≈ 0.87 and 0.83 with this box.)
ASTRONAUT_FACE = (175.0, 65.0, 95.0, 110.0)
CATEGORIES = {3: "person", 7: "face", 9: "cat"}


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    return inter / (aw * ah + bw * bh - inter)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    import skimage.data

    return np.ascontiguousarray(skimage.data.astronaut())


def assert_well_formed(results: list[list[DetectionBox]], images: list[np.ndarray], ids: set[int]) -> None:
    assert len(results) == len(images)
    for dets, img in zip(results, images, strict=True):
        h, w = img.shape[:2]
        scores = [d.score for d in dets]
        assert scores == sorted(scores, reverse=True)
        for d in dets:
            assert isinstance(d, DetectionBox) and d.category_id in ids
            assert d.x >= 0 and d.y >= 0 and d.w > 0 and d.h > 0
            assert d.x + d.w <= w + 1e-3 and d.y + d.h <= h + 1e-3
            assert 0.0 <= d.score <= 1.0


# --- spec grammar and errors ----------------------------------------------------------------


def test_parse_spec_forms() -> None:
    assert parse_detector_spec(" mtcnn ").name == "mtcnn"
    spec = parse_detector_spec("mtcnn?min_face_size=40&label_map=face:person,x:y&note=a=b")
    assert spec.name == "mtcnn"
    assert spec.options == {"min_face_size": "40", "label_map": "face:person,x:y", "note": "a=b"}
    spec = parse_detector_spec("torchvision:ssd300_vgg16?weights=/w/a.pth&device=cpu")
    assert spec.name == "torchvision"
    assert spec.options == {"target": "ssd300_vgg16", "weights": "/w/a.pth", "device": "cpu"}
    assert parse_detector_spec("hf:/models/detr:v1").options == {"target": "/models/detr:v1"}
    for bad in ("", "  ", "mtcnn?min_face_size", "mtcnn?=3", "hf:", ":x", "hf:/a?target=/b", "mtcnn?a=1&a=2"):
        with pytest.raises(ConfigError):
            parse_detector_spec(bad)


def test_unknown_detector_lists_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown detector 'yolo'; known: haar, hf, mtcnn, scripted, torchvision"):
        load_detector("yolo?x=1", CATEGORIES)
    assert {"haar", "hf", "mtcnn", "torchvision"} <= set(DETECTORS.names())


def test_unknown_option_is_named_with_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown option 'min_face'.*known: .*label_map, min_face_size"):
        load_detector("mtcnn?min_face=10", CATEGORIES)
    with pytest.raises(ConfigError, match=r"unknown option 'scale'.*scale_factor"):
        load_detector("haar?scale=1.2", CATEGORIES)
    with pytest.raises(ConfigError, match="takes no ':<target>'"):
        load_detector("haar:frontal", CATEGORIES)
    with pytest.raises(ConfigError, match=r"option 'min_face_size': 'big' is invalid: .*valid integer"):
        load_detector("mtcnn?min_face_size=big", CATEGORIES)
    with pytest.raises(
        ConfigError, match=r"thresholds': '0.6,1.5,0.7' is not 3 comma-separated numbers in \[0.0, 1.0\]"
    ):
        load_detector("mtcnn?thresholds=0.6,1.5,0.7", CATEGORIES)
    with pytest.raises(ConfigError, match=r"thresholds': '0.6,0.7' is not 3"):
        load_detector("mtcnn?thresholds=0.6,0.7", CATEGORIES)
    with pytest.raises(ConfigError, match=r"option cascade='nope.xml'.*haarcascade_frontalface_default.xml"):
        load_detector("haar?cascade=nope.xml", CATEGORIES)


def test_torchvision_spec_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"needs weights=PATH.*random=1"):
        load_detector("torchvision:fasterrcnn_resnet50_fpn", CATEGORIES)
    with pytest.raises(ConfigError, match=r"unknown architecture 'yolov8'; known: fasterrcnn_resnet50_fpn"):
        load_detector("torchvision:yolov8?random=1", CATEGORIES)
    with pytest.raises(ConfigError, match="needs an architecture"):
        load_detector("torchvision?random=1", CATEGORIES)
    with pytest.raises(ConfigError, match="contradict"):
        load_detector("torchvision:ssd300_vgg16?random=1&weights=/x.pt", CATEGORIES)
    with pytest.raises(ConfigError, match=r"num_classes=4 but labels names 2 classes"):
        load_detector("torchvision:ssd300_vgg16?random=1&num_classes=4&labels=face,cat", CATEGORIES)
    with pytest.raises(ConfigError, match="needs labels="):
        load_detector("torchvision:ssd300_vgg16?random=1&num_classes=4", CATEGORIES)
    with pytest.raises(InputError, match="weights file not found"):
        load_detector(f"torchvision:ssd300_vgg16?weights={tmp_path / 'missing.pth'}", CATEGORIES)
    with pytest.raises(InputError, match="not a directory"):
        load_detector(f"hf:{tmp_path / 'none'}", CATEGORIES)


# --- label maps -----------------------------------------------------------------------------


def test_label_map_exact_names_ignore_case_and_nothing_else() -> None:
    native = {0: "Face", 1: "person ", 2: "motorbike", 3: "N/A"}
    assert build_label_map(native, {1: "face", 2: "person", 4: "motorcycle"}, None, "d") == {0: 1, 1: 2}


def test_label_map_explicit_overrides_and_leaves_the_rest_to_names() -> None:
    native = {0: "face", 1: "person", 2: "motorbike"}
    cats = {1: "face", 2: "person", 4: "motorcycle"}
    assert build_label_map(native, cats, "motorbike:Motorcycle", "d") == {0: 1, 1: 2, 2: 4}
    assert build_label_map(native, cats, "face:person", "d") == {0: 2, 1: 2}
    with pytest.raises(ConfigError, match=r"native label 'bike'.*its labels: 'face', 'motorbike', 'person'"):
        build_label_map(native, cats, "bike:motorcycle", "d")
    with pytest.raises(ConfigError, match=r"'bicycle', which is not a dataset.*'face', 'motorcycle', 'person'"):
        build_label_map(native, cats, "motorbike:bicycle", "d")
    for bad in ("face", "face:", ":face", ",", "face:person,Face:face"):
        with pytest.raises(ConfigError, match="label_map"):
            build_label_map(native, cats, bad, "d")


def test_label_map_without_overlap_fails_at_load_time() -> None:
    with pytest.raises(ConfigError, match=r"none of its labels \('face'\) is a dataset category \('car', 'dog'\)"):
        build_label_map({0: "face"}, {1: "car", 2: "dog"}, None, "mtcnn")
    with pytest.raises(ConfigError, match=r"detector 'haar': none of its labels"):
        load_detector("haar", {1: "car", 2: "dog"})
    with pytest.raises(ConfigError, match="ambiguous"):
        build_label_map({0: "face"}, {1: "face", 2: "Face"}, None, "d")
    assert load_detector("haar?label_map=face:dog", {1: "car", 2: "dog"}).label_map == {0: 2}


def test_unmapped_detections_are_dropped_counted_and_boxes_clipped() -> None:
    xyxy = np.array([[-5, 10, 20, 30], [0, 0, 5, 5], [50, 50, 60, 70], [200, 200, 210, 210]], dtype=float)
    boxes, dropped = to_boxes({0: 7}, [0, 1, 0, 0], xyxy, [0.5, 0.9, 0.8, 0.7], width=100, height=80)
    assert dropped == 1  # native label 1 maps to nothing; the off-image box is dropped uncounted
    assert boxes == [DetectionBox(7, 50.0, 50.0, 10.0, 20.0, 0.8), DetectionBox(7, 0.0, 10.0, 20.0, 20.0, 0.5)]


def test_coco_names_agree_with_torchvision_metadata() -> None:
    meta = pytest.importorskip("torchvision.models._meta")
    expected = {i: n for i, n in enumerate(meta._COCO_CATEGORIES) if n not in ("__background__", "N/A")}
    assert expected == COCO_CATEGORY_NAMES and len(expected) == 80


# --- face detectors with their real weights -----------------------------------------------


@pytest.mark.parametrize("spec", ["mtcnn", "haar"])
def test_face_detectors_find_the_astronaut(spec: str, astronaut: np.ndarray) -> None:
    det = load_detector(spec, CATEGORIES)
    assert isinstance(det, Detector) and det.name == spec
    images = [astronaut, np.ascontiguousarray(astronaut[:300, :400]), np.zeros((60, 80, 3), np.uint8), astronaut]
    results = det.detect(images)
    assert_well_formed(results, images, {7})
    best = results[0][0]
    assert best.category_id == 7 and best.score > 0.9
    assert iou(tuple(best[1:5]), ASTRONAUT_FACE) >= 0.5
    assert iou(tuple(results[1][0][1:5]), ASTRONAUT_FACE) >= 0.5  # a crop in a batch of mixed sizes
    assert results[2] == [] and results[3] == results[0]
    assert det.dropped_unmapped == 0
    with pytest.raises(InputError, match="image 0"):
        det.detect([astronaut[..., 0]])


def test_face_detector_with_explicit_map_to_person(astronaut: np.ndarray) -> None:
    det = load_detector("mtcnn?min_face_size=40&label_map=face:person", {3: "person"})
    assert {d.category_id for d in det.detect([astronaut])[0]} == {3}


def test_haar_scores_are_a_monotonic_map_into_0_1() -> None:
    w = np.array([-100.0, -2.0, 0.0, 1.5, 6.0, 100.0])
    s = level_weight_score(w)
    assert np.all(np.diff(s) >= 0) and s[2] == 0.5 and np.all((s >= 0) & (s <= 1))


def test_scripted_detector_boxes_the_bright_patch_and_is_deterministic() -> None:
    img = np.full((120, 160, 3), 40, np.uint8)
    img[30:60, 40:80] = 230
    det = load_detector("scripted?extra=2", CATEGORIES)
    first = det.detect([img, img.copy()])
    assert first[0] == first[1] and len(first[0]) == 3  # same pixels, same answer; bright box + 2 extra
    bright = [b for b in first[0] if (b.x, b.y, b.w, b.h) == (40.0, 30.0, 40.0, 30.0)]
    assert len(bright) == 1 and bright[0].category_id == 7  # "face" in CATEGORIES
    other = img.copy()
    other[0, 0] = 41
    assert det.detect([other])[0] != first[0]  # another image, other extra boxes and scores
    assert len(load_detector("scripted?extra=0", CATEGORIES).detect([np.zeros((8, 8, 3), np.uint8)])[0]) == 0


# --- torchvision and transformers with tiny random models -----------------------------------


def test_torchvision_random_init_and_weights_round_trip(tmp_path: Path, astronaut: np.ndarray) -> None:
    import torch

    spec = "torchvision:ssdlite320_mobilenet_v3_large?labels=face,dog&score_threshold=0.0&max_detections=20"
    det = load_detector(spec + "&random=1", {7: "face"})
    images = [astronaut, np.ascontiguousarray(astronaut[100:340, 50:370])]
    first = det.detect(images)
    assert_well_formed(first, images, {7})
    assert all(len(r) > 0 for r in first)
    with torch.no_grad():  # 'dog' (native label 2) detections have no dataset category: dropped, counted
        raw = det.model([torch.from_numpy(img).permute(2, 0, 1).float() / 255 for img in images])
    assert det.dropped_unmapped == sum(int((r["labels"] == 2).sum()) for r in raw)
    assert sum(map(len, first)) == sum(int((r["labels"] == 1).sum()) for r in raw)
    with torch.no_grad():  # new weights, so the round trip cannot pass by re-running the seeded init
        for p in det.model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    changed = det.detect(images)
    path = tmp_path / "ssdlite.pt"
    torch.save({"model": det.model.state_dict()}, path)
    loaded = load_detector(f"{spec}&weights={path}", {7: "face"})
    assert loaded.detect(images) == changed != first
    bad = tmp_path / "other.pt"
    torch.save({"w": torch.zeros(2)}, bad)
    with pytest.raises(InputError, match="does not fit"):
        load_detector(f"{spec}&weights={bad}", {7: "face"})


@pytest.fixture(scope="module")
def tiny_yolos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide YOLOS (a ViT detector: no separate backbone to fetch) and its processor."""
    import torch
    from transformers import YolosConfig, YolosForObjectDetection, YolosImageProcessor

    labels = {0: "person", 1: "face", 2: "car"}
    config = YolosConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=[64, 64],
        patch_size=16,
        num_detection_tokens=10,
        id2label=labels,
        label2id={v: k for k, v in labels.items()},
    )
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny_yolos")
    YolosForObjectDetection(config).save_pretrained(out)
    YolosImageProcessor(size={"shortest_edge": 64, "longest_edge": 96}).save_pretrained(out)
    return out


def test_hf_detector_from_a_local_directory(tiny_yolos: Path, astronaut: np.ndarray) -> None:
    images = [astronaut, np.ascontiguousarray(astronaut[:240, :320]), np.ascontiguousarray(astronaut[:240, :320])]
    det = load_detector(f"hf:{tiny_yolos}?score_threshold=0.0&max_detections=5", {7: "face", 3: "person", 4: "car"})
    results = det.detect(images)
    assert_well_formed(results, images, {3, 4, 7})
    assert [len(r) for r in results] == [5, 5, 5]  # 10 detection tokens, all mapped, the best 5 kept
    assert results[1] == results[2]

    det = load_detector(f"hf:{tiny_yolos}?score_threshold=0.0", {7: "face", 3: "person"})
    assert det.label_map == {0: 3, 1: 7}  # from config.id2label; 'car' maps to nothing
    results = det.detect(images)
    assert_well_formed(results, images, {3, 7})
    assert sum(map(len, results)) + det.dropped_unmapped == 3 * 10  # every token is kept or counted as dropped
    with pytest.raises(ConfigError, match=r"none of its labels \('car', 'face', 'person'\)"):
        load_detector(f"hf:{tiny_yolos}", {1: "dog"})
    with pytest.raises(InputError, match="no config.json"):
        load_detector(f"hf:{tiny_yolos.parent}", {1: "face"})
