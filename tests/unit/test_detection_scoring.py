"""Leaderboard math, detections → COCO results, and the generated face set's ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from trustflow.data.schemas import DETECTIONS
from trustflow.errors import ConfigError
from trustflow.tasks.detection.inference import detections_to_coco, drop_done, image_keys_of
from trustflow.tasks.detection.metrics import STAT_NAMES
from trustflow.tasks.detection.scoring import leaderboard, score_all


def _metric(detector: str, domain: str, ap: float) -> dict:
    return {"detector": detector, "domain": domain, **{k: ap for k in STAT_NAMES}}


def test_leaderboard_given_trend_relative_drop_and_order() -> None:
    rows = [
        _metric("a", "original", 0.6),
        _metric("a", "sketch", 0.2),
        _metric("a", "weather", 0.4),
        _metric("b", "original", 0.4),
        _metric("b", "sketch", 0.3),
        _metric("b", "weather", 0.35),
    ]
    board = leaderboard(rows, "original")
    assert [r["detector"] for r in board] == ["b", "a"]  # best OOD mAP first
    a = {r["detector"]: r for r in board}["a"]
    assert a["ood_map"] == pytest.approx(0.3) and a["ood_domains"] == 2
    assert a["relative_drop"] == pytest.approx(0.5)
    assert a["effective_robustness"] == pytest.approx(0.3 - 0.45 * 0.6)
    assert (a["trend_a"], a["trend_b"], a["trend"]) == (0.0, 0.45, "given")


def test_leaderboard_fitted_trend_puts_two_detectors_on_the_line() -> None:
    rows = [_metric("a", "id", 0.6), _metric("a", "x", 0.3), _metric("b", "id", 0.4), _metric("b", "x", 0.25)]
    board = leaderboard(rows, "id", trend="fit")
    for r in board:  # a line through two points: both residuals vanish
        assert r["effective_robustness"] == pytest.approx(0.0, abs=1e-12)
        assert r["trend"] == "fitted"
    assert board[0]["trend_b"] == pytest.approx(0.25)  # (0.30 - 0.25) / (0.6 - 0.4)


def test_leaderboard_errors_name_the_missing_domain() -> None:
    with pytest.raises(ConfigError, match="in-distribution domain 'original'"):
        leaderboard([_metric("a", "sketch", 0.1)], "original")
    with pytest.raises(ConfigError, match="no shifted domain"):
        leaderboard([_metric("a", "original", 0.1)], "original")


def _det_table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, DETECTIONS.schema)


def test_detections_to_coco_and_scoring_without_ray() -> None:
    gt = {
        "images": [{"id": 1, "width": 100, "height": 100}, {"id": 2, "width": 100, "height": 100}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 40, 40], "area": 1600, "iscrowd": 0}
        ],
        "categories": [{"id": 1, "name": "face"}],
    }
    table = _det_table(
        [
            {
                "detector": "d",
                "domain": "x",
                "split": "val",
                "image_id": 1,
                "category_ids": [1],
                "boxes": [[10.0, 10.0, 40.0, 40.0]],
                "scores": [0.9],
                "seconds": 0.1,
            },
            {
                "detector": "d",
                "domain": "x",
                "split": "val",
                "image_id": 2,
                "category_ids": [],
                "boxes": [],
                "scores": [],
                "seconds": 0.1,
            },
        ]
    )
    coco = detections_to_coco(table)
    assert coco == [{"image_id": 1, "category_id": 1, "bbox": [10.0, 10.0, 40.0, 40.0], "score": 0.9}]
    (row,) = score_all({"x": gt}, table, ["d"], parallel=False)
    assert row["AP"] == pytest.approx(1.0) and row["images"] == 2 and row["detections"] == 1


def test_drop_done_keeps_only_wanted_domains_and_new_images() -> None:
    batch = pa.table(
        {"domain": ["a", "a", "b"], "split": ["v", "v", "v"], "image_id": [1, 2, 1], "image_bytes": [b"", b"", b""]}
    )
    done = image_keys_of(pa.table({"domain": ["a"], "split": ["v"], "image_id": [1]}))
    kept = drop_done(batch, done, frozenset({"a"}))
    assert kept["image_id"].to_pylist() == [2]
    assert drop_done(batch, None, None).num_rows == 3
    assert drop_done(batch, done, None)["image_id"].to_pylist() == [2, 1]  # b/v/1 is another image; order kept


def test_face_set_ground_truth_is_exact_and_deterministic(tmp_path: Path) -> None:
    from trustflow.data.loaders.coco import load_coco
    from trustflow.data.synthetic_faces import make_face_coco

    a = make_face_coco(tmp_path / "a", n_images=6, seed=1)
    b = make_face_coco(tmp_path / "b", n_images=6, seed=1)
    doc = json.loads((a / "annotations" / "instances_val2017.json").read_text())
    assert doc == json.loads((b / "annotations" / "instances_val2017.json").read_text())
    assert all(
        (a / "val2017" / f"{i:06d}.png").read_bytes() == (b / "val2017" / f"{i:06d}.png").read_bytes()
        for i in range(1, 7)
    )
    (split,) = load_coco(a)  # validates boxes inside images, ids unique
    assert split.annotations.num_rows >= 6 and [c["name"] for c in doc["categories"]] == ["face"]
    by_image: dict[int, list] = {}
    for ann in doc["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann["bbox"])
    for boxes in by_image.values():  # pasted faces never overlap
        for i, (x, y, w, h) in enumerate(boxes):
            for u, v, p, q in boxes[i + 1 :]:
                assert x + w <= u or u + p <= x or y + h <= v or v + q <= y


def test_score_stored_reads_its_own_slices_and_matches_score_all(tmp_path: Path) -> None:
    """The flow's path (each evaluation reads its detector × domain from the store) gives the
    same rows as scoring the whole tables in memory, for two detectors × two domains that
    reuse image ids."""
    from trustflow.data.schemas import COCO_ANNOTATIONS, COCO_CATEGORIES, COCO_IMAGES
    from trustflow.data.store import ArtifactStore, StageRef
    from trustflow.settings import load_settings
    from trustflow.tasks.detection.metrics import gt_from_tables
    from trustflow.tasks.detection.scoring import score_stored
    from trustflow.tasks.ray_parts import StoreSpec

    store = ArtifactStore(settings=load_settings(store_url=f"file://{tmp_path / 'store'}", home=tmp_path / "home"))
    domains = ["original", "weather"]
    images = pa.Table.from_pylist(
        [
            {"image_id": i, "domain": d, "split": "val", "file_name": f"{i}.jpg", "width": 100, "height": 80}
            | {"image_bytes": b"", "sha256": ""}
            for d in domains
            for i in (1, 2, 3)
        ],
        COCO_IMAGES.schema,
    )
    annotations = pa.Table.from_pylist(
        [
            {"ann_id": i, "image_id": i, "domain": d, "split": "val", "category_id": 1}
            | {"bbox": [10.0 * i, 10.0, 20.0, 20.0], "area": 400.0, "iscrowd": False}
            for d in domains
            for i in (1, 2, 3)
        ],
        COCO_ANNOTATIONS.schema,
    )
    categories = pa.Table.from_pylist([{"category_id": 1, "name": "face", "supercategory": ""}], COCO_CATEGORIES.schema)
    rows = []
    for det, shift in (("good", 0.0), ("off", 5.0)):
        for k, d in enumerate(domains):
            for i in (1, 2, 3):
                hit = not (d == "weather" and i == 3)  # every detector misses one weather image
                box = [10.0 * i + shift * (k + 1), 10.0, 20.0, 20.0]
                rows.append(
                    {"detector": det, "domain": d, "split": "val", "image_id": i, "seconds": 0.0}
                    | {
                        "category_ids": [1] if hit else [],
                        "boxes": [box] if hit else [],
                        "scores": [0.9] if hit else [],
                    }
                )
    detections = _det_table(rows)
    refs = [StageRef("t", "r", s) for s in ("detections", "images", "annotations", "categories")]
    for ref, schema, table, keys in zip(
        refs,
        (DETECTIONS, COCO_IMAGES, COCO_ANNOTATIONS, COCO_CATEGORIES),
        (detections, images, annotations, categories),
        (["detector", "domain", "split", "image_id"], ["domain", "split", "image_id"], ["domain", "split", "ann_id"])
        + (["category_id"],),
        strict=True,
    ):
        store.write_stage(ref, schema, table, keys)
    stored = score_stored(StoreSpec.of(store), *refs, ["good", "off"], domains, parallel=False)
    gt = {d: gt_from_tables(images, annotations, categories, d) for d in domains}
    assert stored == score_all(gt, detections, ["good", "off"], parallel=False)
    by = {(r["detector"], r["domain"]): r for r in stored}
    assert by["good", "original"]["AP"] == pytest.approx(1.0) and by["good", "weather"]["detections"] == 2
    assert by["off", "weather"]["AP"] < by["off", "original"]["AP"] < 1.0  # the slices differ per domain
