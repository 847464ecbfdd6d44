"""COCO bbox metrics on small hand-made fixtures, with both engines checked against each other.

Every fixture is scored by ``faster_coco_eval`` (our default) and ``pycocotools``; the two must
agree to 1e-4 on all 12 numbers. Expected values are worked out by hand in the comments.
COCO's AP is the mean over 10 IoU thresholds (0.50:0.05:0.95) of a 101-point interpolated
precision at recall 0, 0.01, ..., 1; a detection matches a box when IoU >= the threshold.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from trustflow.data.schemas import COCO_ANNOTATIONS, COCO_CATEGORIES, COCO_IMAGES
from trustflow.errors import ConfigError, InputError
from trustflow.tasks.detection.metrics import (
    STAT_NAMES,
    CocoStats,
    coco_bbox_stats,
    effective_robustness,
    fit_trend,
    gt_from_tables,
    relative_drop,
    score_files,
)

TOL = 1e-4


def make_gt(objects: list[tuple], images: int | list[int] = 1, categories: int = 3) -> dict:
    """objects: (image_id, category_id, [x, y, w, h]) or (..., iscrowd)."""
    image_ids = list(range(1, images + 1)) if isinstance(images, int) else images
    anns = []
    for k, obj in enumerate(objects):
        image_id, cat, box = obj[:3]
        crowd = obj[3] if len(obj) > 3 else 0
        anns.append(
            {
                "id": k + 1,
                "image_id": image_id,
                "category_id": cat,
                "bbox": list(box),
                "area": float(box[2] * box[3]),
                "iscrowd": crowd,
            }
        )
    return {
        "images": [{"id": i, "width": 640, "height": 480, "file_name": f"{i}.jpg"} for i in image_ids],
        "annotations": anns,
        "categories": [{"id": c, "name": f"c{c}", "supercategory": "thing"} for c in range(1, categories + 1)],
    }


def det(image_id: int, cat: int, box: list[float], score: float) -> dict:
    return {"image_id": image_id, "category_id": cat, "bbox": list(box), "score": score}


def both(gt: dict, dets: list[dict]) -> CocoStats:
    """Stats from the default engine, after checking pycocotools agrees on all 12 numbers."""
    fast = coco_bbox_stats(gt, dets)
    ref = coco_bbox_stats(gt, dets, engine="pycocotools")
    for name, a, b in zip(STAT_NAMES, fast.as_tuple(), ref.as_tuple(), strict=True):
        assert a == pytest.approx(b, abs=TOL), f"{name}: faster {a} vs pycocotools {b}"
    return fast


# One object per (image, category), in all three area buckets (small < 32², medium < 96²).
SMALL, MEDIUM, LARGE = [10, 10, 20, 20], [100, 100, 50, 50], [200, 150, 150, 150]
PERFECT_OBJECTS = [(1, 1, SMALL), (1, 2, MEDIUM), (1, 3, LARGE), (2, 1, LARGE), (2, 2, SMALL), (3, 3, MEDIUM)]


def test_stat_names_match_dataclass() -> None:
    stats = CocoStats.from_sequence(list(range(12)))
    assert tuple(stats.as_dict()) == STAT_NAMES
    assert stats.as_dict()["AR100"] == 8.0


def test_perfect_detections_score_one() -> None:
    gt = make_gt(PERFECT_OBJECTS, images=3)
    dets = [det(i, c, b, 0.9) for i, c, b in PERFECT_OBJECTS]
    stats = both(gt, dets)
    assert stats.as_tuple() == pytest.approx((1.0,) * 12, abs=1e-9)


def test_shifted_boxes_match_at_iou_050_but_not_075() -> None:
    # Each detection is its 100x100 box shifted by 13 px right and 13 px down:
    # intersection = 87 * 87 = 7569, union = 2 * 10000 - 7569 = 12431, IoU = 0.6089.
    # It matches at thresholds 0.50, 0.55, 0.60 and misses 0.65 ... 0.95: AP50 = 1, AP75 = 0,
    # AP = 3/10 = 0.3; recall follows the same pattern, so AR = 0.3 too.
    objects = [(1, 1, [50, 50, 100, 100]), (2, 2, [300, 200, 100, 100]), (2, 1, [10, 300, 100, 100])]
    gt = make_gt(objects, images=2)
    dets = [det(i, c, [b[0] + 13, b[1] + 13, b[2], b[3]], 0.8) for i, c, b in objects]
    stats = both(gt, dets)
    assert pytest.approx(1.0) == stats.AP50
    assert pytest.approx(0.0) == stats.AP75
    assert pytest.approx(0.3) == stats.AP
    assert pytest.approx(0.3) == stats.AR100
    assert stats.APs == -1.0 and stats.ARs == -1.0  # no small objects: COCO's "no ground truth"


def test_duplicate_detection_is_a_false_positive() -> None:
    # Objects A and B (same image, same category). Ranked detections: A (0.9, TP), a duplicate
    # of A (0.8, FP: A is already taken), B (0.7, TP). Recall/precision after each: (0.5, 1),
    # (0.5, 0.5), (1.0, 2/3); interpolated precision is 1 up to recall 0.5 and 2/3 above it.
    # Of the 101 recall points, 51 (0.00..0.50) get 1 and 50 (0.51..1.00) get 2/3:
    # AP = (51 + 50 * 2/3) / 101 = 0.834983, at every IoU threshold (the boxes are exact).
    a, b = [10, 10, 80, 80], [200, 200, 80, 80]
    gt = make_gt([(1, 1, a), (1, 1, b)], categories=1)
    dets = [det(1, 1, a, 0.9), det(1, 1, a, 0.8), det(1, 1, b, 0.7)]
    stats = both(gt, dets)
    expected = (51 + 50 * 2 / 3) / 101
    assert pytest.approx(expected, abs=1e-6) == stats.AP
    assert pytest.approx(expected, abs=1e-6) == stats.AP50
    assert pytest.approx(expected, abs=1e-6) == stats.AP75
    assert pytest.approx(0.5) == stats.AR1  # one detection per image and category: only A
    assert pytest.approx(1.0) == stats.AR10
    # without the duplicate every detection is a TP
    assert pytest.approx(1.0) == both(gt, [dets[0], dets[2]]).AP


def test_detection_on_crowd_region_is_ignored_not_a_false_positive() -> None:
    # A crowd region (iscrowd=1) covers the left half; a detection inside it scores 0.95, above
    # the real hit on the object at the right. Against a crowd region IoU is intersection over
    # the detection's own area (= 1 here), so the detection is matched to the crowd and ignored:
    # AP = 1. Counted as a false positive ranked first, it would give precision 1/2 at recall 1.
    crowd, obj = [0, 0, 300, 400], [400, 100, 100, 100]
    gt = make_gt([(1, 1, crowd, 1), (1, 1, obj)], categories=1)
    dets = [det(1, 1, [50, 50, 60, 60], 0.95), det(1, 1, obj, 0.9)]
    stats = both(gt, dets)
    assert pytest.approx(1.0) == stats.AP
    assert pytest.approx(1.0) == stats.AR100  # the crowd region is not an object to recall

    # The same detection with the region not marked crowd is a plain false positive:
    # its IoU with a 300x400 box is 3600/120000 = 0.03. Ranked first -> precision 1/2 at recall
    # 1 -> AP = 0.5.
    gt_plain = make_gt([(1, 1, obj)], categories=1)
    assert pytest.approx(0.5) == both(gt_plain, dets).AP


def test_images_without_detections_cost_recall() -> None:
    # Two images, one object each; only image 1 is detected. Recall reaches 0.5 at precision 1,
    # so 51 of the 101 recall points get precision 1: AP = 51/101. An image with no objects and
    # no detections (image 3) changes nothing.
    gt = make_gt([(1, 1, [10, 10, 100, 100]), (2, 1, [30, 30, 100, 100])], images=3, categories=1)
    stats = both(gt, [det(1, 1, [10, 10, 100, 100], 0.9)])
    assert pytest.approx(51 / 101) == stats.AP
    assert pytest.approx(0.5) == stats.AR100
    # A detection on the object-free image 3 is a false positive; ranked below the hit it
    # leaves AP unchanged, ranked above it halves the precision.
    assert pytest.approx(51 / 101) == both(gt, [det(1, 1, [10, 10, 100, 100], 0.9), det(3, 1, [0, 0, 50, 50], 0.5)]).AP
    assert (
        pytest.approx(51 * 0.5 / 101)
        == both(gt, [det(1, 1, [10, 10, 100, 100], 0.9), det(3, 1, [0, 0, 50, 50], 0.99)]).AP
    )


def test_zero_detections_give_zero_not_a_crash() -> None:
    stats = both(make_gt(PERFECT_OBJECTS, images=3), [])
    expected = dict.fromkeys(STAT_NAMES, 0.0)
    assert stats.as_dict() == pytest.approx(expected)


def test_area_buckets() -> None:
    # One object per category: a small (20x20 = 400 < 32²), a medium (50x50 = 2500) and a large
    # (150x150 = 22500 > 96²) one. The medium one is missed: per-category AP is 1, 0, 1.
    gt = make_gt([(1, 1, SMALL), (1, 2, MEDIUM), (1, 3, LARGE)])
    dets = [det(1, 1, SMALL, 0.9), det(1, 3, LARGE, 0.8)]
    stats = both(gt, dets)
    assert (stats.APs, stats.APm, stats.APl) == pytest.approx((1.0, 0.0, 1.0))
    assert (stats.ARs, stats.ARm, stats.ARl) == pytest.approx((1.0, 0.0, 1.0))
    assert pytest.approx(2 / 3) == stats.AP
    assert pytest.approx(2 / 3) == stats.AR100


def test_bucket_follows_gt_area_field_and_missing_area_is_box_area() -> None:
    # COCO buckets ground truth by its 'area' (the mask area), not its box: a 40x40 box
    # (1600, medium) with area 900 is small.
    gt = make_gt([(1, 1, [10, 10, 40, 40])], categories=1)
    gt["annotations"][0]["area"] = 900.0
    stats = both(gt, [det(1, 1, [10, 10, 40, 40], 0.9)])
    assert (stats.APs, stats.APm) == (pytest.approx(1.0), -1.0)
    # without 'area' the box area (1600) is used: medium
    del gt["annotations"][0]["area"]
    stats = both(gt, [det(1, 1, [10, 10, 40, 40], 0.9)])
    assert (stats.APs, stats.APm) == (-1.0, pytest.approx(1.0))


def test_inputs_are_not_modified_and_ann_id_zero_is_safe() -> None:
    # Both engines mark matches with the matched annotation id and read 0 as "unmatched";
    # ids are renumbered internally, so an id-0 annotation still counts as found.
    gt = make_gt([(1, 1, [10, 10, 100, 100])], categories=1)
    gt["annotations"][0]["id"] = 0
    dets = [det(1, 1, [10, 10, 100, 100], 0.9)]
    before = copy.deepcopy((gt, dets))
    assert pytest.approx(1.0) == both(gt, dets).AP
    assert (gt, dets) == before


def random_fixture(seed: int, n_images: int = 50, n_cats: int = 5) -> tuple[dict, list[dict]]:
    """Random boxes, jittered hits, duplicates, category confusions, false positives, crowds."""
    rng = np.random.default_rng(seed)
    objects, dets = [], []
    for image_id in range(1, n_images + 1):
        for _ in range(int(rng.integers(0, 8))):
            side = float(np.exp(rng.uniform(np.log(5), np.log(300))))
            w, h = side * rng.uniform(0.6, 1.4), side * rng.uniform(0.6, 1.4)
            box = [float(rng.uniform(0, 600)), float(rng.uniform(0, 400)), w, h]
            cat = int(rng.integers(1, n_cats + 1))
            objects.append((image_id, cat, box, int(rng.random() < 0.05)))
            for _k in range(int(rng.choice([0, 1, 1, 1, 2]))):
                j = rng.normal(0, 0.12, 4) * [w, h, w, h]
                d_cat = cat if rng.random() > 0.1 else int(rng.integers(1, n_cats + 1))
                dets.append(
                    det(
                        image_id,
                        d_cat,
                        [box[0] + j[0], box[1] + j[1], abs(w + j[2]), abs(h + j[3])],
                        round(float(rng.random()), 3),
                    )
                )  # rounding makes score ties
        for _ in range(int(rng.integers(0, 5))):
            dets.append(
                det(
                    image_id,
                    int(rng.integers(1, n_cats + 1)),
                    [
                        float(rng.uniform(0, 600)),
                        float(rng.uniform(0, 400)),
                        float(rng.uniform(2, 200)),
                        float(rng.uniform(2, 200)),
                    ],
                    round(float(rng.random()) * 0.6, 3),
                )
            )
    return make_gt(objects, images=n_images, categories=n_cats), dets


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_fixture_faster_matches_pycocotools(seed: int) -> None:
    gt, dets = random_fixture(seed)
    stats = both(gt, dets)
    assert 0.0 < stats.AP < 1.0  # a non-trivial case


def test_engine_output_is_silenced(capfd: pytest.CaptureFixture[str]) -> None:
    gt, dets = random_fixture(3, n_images=5)
    both(gt, dets)
    out, _err = capfd.readouterr()
    assert out == ""


# -- errors --------------------------------------------------------------------------------


def test_unknown_image_id_is_named() -> None:
    gt = make_gt([(1, 1, SMALL)])
    with pytest.raises(InputError, match=r"detections: \[1\] image_id 42 is not in the images of the ground truth"):
        coco_bbox_stats(gt, [det(1, 1, SMALL, 0.9), det(42, 1, SMALL, 0.5)])


def test_unknown_category_is_named() -> None:
    gt = make_gt([(1, 1, SMALL)], categories=2)
    with pytest.raises(InputError, match=r"\[0\] category_id 7 is not in the categories of the ground truth"):
        coco_bbox_stats(gt, [det(1, 7, SMALL, 0.9)], engine="pycocotools")


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5]}, "[0] missing field 'score'"),
        ({"image_id": 1, "category_id": 1, "bbox": [0, 0, 5], "score": 0.5}, "[0] bbox [0, 0, 5] is not a list of 4"),
        ({"image_id": 1, "category_id": 1, "bbox": [0, 0, -5, 5], "score": 0.5}, "width, height >= 0"),
        ({"image_id": "1", "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5}, "image_id '1' is not an integer"),
        ({"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "score": float("nan")}, "score nan is not a finite"),
    ],
)
def test_malformed_detection_is_named(bad: dict, message: str) -> None:
    with pytest.raises(InputError) as err:
        coco_bbox_stats(make_gt([(1, 1, SMALL)]), [bad])
    assert message in str(err.value)


def test_malformed_ground_truth_is_named() -> None:
    gt = make_gt([(1, 1, SMALL)])
    gt["annotations"][0]["image_id"] = 9
    with pytest.raises(InputError, match=r"annotations\[0\] image_id 9 is not in 'images'"):
        coco_bbox_stats(gt, [])
    with pytest.raises(InputError, match="missing field 'categories'"):
        coco_bbox_stats({"images": [{"id": 1}], "annotations": []}, [])


def test_unknown_engine() -> None:
    with pytest.raises(ConfigError, match="unknown COCO engine"):
        coco_bbox_stats(make_gt([(1, 1, SMALL)]), [], engine="detectron")  # type: ignore[arg-type]


def test_score_files(tmp_path: Path) -> None:
    gt = make_gt(PERFECT_OBJECTS, images=3)
    dets = [det(i, c, b, 0.9) for i, c, b in PERFECT_OBJECTS]
    (tmp_path / "instances.json").write_text(json.dumps(gt))
    (tmp_path / "results.json").write_text(json.dumps(dets))
    stats = score_files(tmp_path / "instances.json", tmp_path / "results.json", engine="pycocotools")
    assert pytest.approx(1.0) == stats.AP


def test_score_files_errors_name_the_file(tmp_path: Path) -> None:
    gt_path, dt_path = tmp_path / "instances.json", tmp_path / "results.json"
    gt_path.write_text(json.dumps(make_gt([(1, 1, SMALL)])))
    dt_path.write_text('[{"image_id": 1,')
    with pytest.raises(InputError, match=r"results\.json: not valid JSON"):
        score_files(gt_path, dt_path)
    dt_path.write_text(json.dumps({"annotations": []}))
    with pytest.raises(InputError, match=r"results\.json: COCO results must be a JSON array"):
        score_files(gt_path, dt_path)
    good = det(1, 1, SMALL, 0.5)
    dt_path.write_text(json.dumps([good, good, good, {k: v for k, v in good.items() if k != "score"}]))
    with pytest.raises(InputError) as err:
        score_files(gt_path, dt_path)
    assert "results.json: [3] missing field 'score'" in str(err.value)
    dt_path.write_text(json.dumps([{**good, "image_id": 77}]))
    with pytest.raises(InputError, match=r"results\.json: \[0\] image_id 77 is not in the images of .*instances\.json"):
        score_files(gt_path, dt_path)
    gt_path.write_text("[]")
    with pytest.raises(InputError, match=r"instances\.json: COCO ground truth must be a JSON object"):
        score_files(gt_path, dt_path)


# -- from our Parquet tables ---------------------------------------------------------------


def coco_tables() -> tuple[pa.Table, pa.Table, pa.Table]:
    """Two domains that reuse image id 1, as COCO-O's domains do."""
    images = pa.Table.from_pylist(
        [
            {
                "image_id": 1,
                "domain": "cartoon",
                "split": "val",
                "file_name": "c1.jpg",
                "width": 640,
                "height": 480,
                "image_bytes": None,
                "sha256": "a",
            },
            {
                "image_id": 2,
                "domain": "cartoon",
                "split": "val",
                "file_name": "c2.jpg",
                "width": 640,
                "height": 480,
                "image_bytes": None,
                "sha256": "b",
            },
            {
                "image_id": 1,
                "domain": "sketch",
                "split": "val",
                "file_name": "s1.jpg",
                "width": 320,
                "height": 240,
                "image_bytes": None,
                "sha256": "c",
            },
        ],
        schema=COCO_IMAGES.schema,
    )
    annotations = pa.Table.from_pylist(
        [
            {
                "ann_id": 10,
                "image_id": 1,
                "domain": "cartoon",
                "split": "val",
                "category_id": 1,
                "bbox": [10.0, 10.0, 50.0, 50.0],
                "area": 2500.0,
                "iscrowd": False,
            },
            {
                "ann_id": 11,
                "image_id": 2,
                "domain": "cartoon",
                "split": "val",
                "category_id": 2,
                "bbox": [0.0, 0.0, 200.0, 100.0],
                "area": 20000.0,
                "iscrowd": True,
            },
            {
                "ann_id": 10,
                "image_id": 1,
                "domain": "sketch",
                "split": "val",
                "category_id": 2,
                "bbox": [5.0, 5.0, 20.0, 20.0],
                "area": 400.0,
                "iscrowd": False,
            },
        ],
        schema=COCO_ANNOTATIONS.schema,
    )
    categories = pa.Table.from_pylist(
        [
            {"category_id": 1, "name": "person", "supercategory": "person"},
            {"category_id": 2, "name": "car", "supercategory": None},
        ],
        schema=COCO_CATEGORIES.schema,
    )
    return images, annotations, categories


def test_gt_from_tables_filters_one_domain() -> None:
    gt = gt_from_tables(*coco_tables(), domain="cartoon")
    assert [i["id"] for i in gt["images"]] == [1, 2]
    assert gt["images"][0] == {"id": 1, "width": 640, "height": 480, "file_name": "c1.jpg"}
    assert gt["annotations"] == [
        {"id": 10, "image_id": 1, "category_id": 1, "bbox": [10.0, 10.0, 50.0, 50.0], "area": 2500.0, "iscrowd": 0},
        {"id": 11, "image_id": 2, "category_id": 2, "bbox": [0.0, 0.0, 200.0, 100.0], "area": 20000.0, "iscrowd": 1},
    ]
    assert gt["categories"][1] == {"id": 2, "name": "car", "supercategory": ""}
    stats = both(gt, [det(1, 1, [10, 10, 50, 50], 0.9)])
    assert pytest.approx(1.0) == stats.AP  # the crowd region in image 2 is not a miss

    sketch = gt_from_tables(*coco_tables(), domain="sketch")
    assert [(a["image_id"], a["category_id"]) for a in sketch["annotations"]] == [(1, 2)]


def test_gt_from_tables_needs_a_domain_when_ids_repeat() -> None:
    with pytest.raises(InputError, match=r"image ids repeat; pass domain= one of \['cartoon', 'sketch'\]"):
        gt_from_tables(*coco_tables())
    with pytest.raises(ConfigError, match="'fog' has no images"):
        gt_from_tables(*coco_tables(), domain="fog")


# -- robustness summaries ------------------------------------------------------------------


def test_effective_robustness() -> None:
    # COCO-O's default line: OOD = 0.45 * ID
    assert effective_robustness(0.5, 0.3) == pytest.approx(0.3 - 0.225)
    assert effective_robustness(0.4, 0.18) == pytest.approx(0.0)
    assert effective_robustness(50.0, 20.0, a=2.0, b=0.3) == pytest.approx(20.0 - (2.0 + 15.0))


def test_fit_trend() -> None:
    ids = [0.3, 0.4, 0.5, 0.6]
    a, b = fit_trend(ids, [0.05 + 0.4 * x for x in ids])
    assert (a, b) == (pytest.approx(0.05), pytest.approx(0.4))
    # points scattered symmetrically around y = x: slope 1, intercept 0
    a, b = fit_trend([0.0, 0.0, 1.0, 1.0], [0.1, -0.1, 1.1, 0.9])
    assert (a, b) == (pytest.approx(0.0, abs=1e-12), pytest.approx(1.0))
    assert effective_robustness(0.5, 0.3, *fit_trend(ids, [0.05 + 0.4 * x for x in ids])) == pytest.approx(0.05)
    with pytest.raises(ConfigError, match="two models with different ID mAP"):
        fit_trend([0.4, 0.4], [0.1, 0.2])
    with pytest.raises(ConfigError, match="equal-length"):
        fit_trend([0.4, 0.5], [0.1])


def test_relative_drop() -> None:
    assert relative_drop(0.5, 0.3) == pytest.approx(0.4)
    assert relative_drop(40.0, 44.0) == pytest.approx(-0.1)
    assert math.isnan(relative_drop(0.0, 0.1))
