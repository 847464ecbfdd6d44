"""Attribute robustness evaluation: label maps, top-k hits, paired bootstrap, leaderboard,
and the resumable predictions stage (in-process writer; the Ray path is in
tests/integration/test_attribute_robustness.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trustflow.data.store import ArtifactStore, StageRef
from trustflow.errors import ConfigError, InputError
from trustflow.models.vision.label_maps import LabelMap, imagenet_classes, parse_label_map
from trustflow.tasks.attributes.metrics import leaderboard, level_order, mean_drops, paired_bootstrap
from trustflow.tests.attribute_fixtures import CLASSES, edit_rows, objects, write_edits

# ---------------------------------------------------------------- label maps


def test_a_dataset_class_may_be_several_imagenet_classes() -> None:
    classes = imagenet_classes()
    lm = LabelMap.build(["motorcycle", "moped", "Egyptian cat", "espresso"], classes, imagenet=True)
    assert lm.describe("motorcycle") == ["moped", "motor scooter"]
    assert lm.describe("moped") == ["moped", "motor scooter"]  # a member names its whole group
    assert "tabby" in lm.describe("Egyptian cat") and "Egyptian cat" in lm.describe("Egyptian cat")
    assert lm.describe("espresso") == ["espresso"]


def test_unmapped_labels_are_named_or_skipped() -> None:
    with pytest.raises(ConfigError, match="'astronaut'"):
        LabelMap.build(["astronaut", "espresso"], imagenet_classes(), imagenet=True)
    lm = LabelMap.build(["astronaut", "espresso"], imagenet_classes(), imagenet=True, skip_unmapped=True)
    assert lm.unmapped == ("astronaut",) and "astronaut" not in lm.hits


def test_an_explicit_map_wins_and_bad_entries_are_named() -> None:
    explicit = parse_label_map(["astronaut=space shuttle|crash helmet", "cat=281"])
    lm = LabelMap.build(["astronaut", "cat"], imagenet_classes(), explicit, imagenet=True)
    assert lm.describe("astronaut") == ["crash helmet", "space shuttle"]
    assert lm.describe("cat") == ["tabby"]  # index 281, and the explicit entry replaces the group
    with pytest.raises(ConfigError, match="'spaceship'.* not among its classes"):
        LabelMap.build(["astronaut"], imagenet_classes(), {"astronaut": ["spaceship"]}, imagenet=True)
    # one map for several classifiers: entries naming another classifier's classes are passed over
    lm = LabelMap.build(["disc"], ["disc", "square"], {"disc": ["ping-pong ball"]})
    assert lm.hits == {"disc": frozenset({0})}
    with pytest.raises(ConfigError, match="label=class"):
        parse_label_map(["astronaut"])


def test_dataset_class_space_maps_by_name() -> None:
    lm = LabelMap.build(["square", "disc"], sorted(CLASSES))
    assert lm.hits == {"disc": frozenset({0}), "square": frozenset({1})}


# ---------------------------------------------------------------- metrics


def test_paired_bootstrap_interval() -> None:
    orig = np.ones(40)
    edited = np.r_[np.zeros(10), np.ones(30)]
    drop, low, high = paired_bootstrap(orig, edited, seed=1)
    assert drop == pytest.approx(0.25)
    assert 0.1 < low < 0.25 < high <= 0.45  # about ±2 standard errors (0.068)
    same = paired_bootstrap(orig[:10], np.zeros(10))
    assert same == (1.0, 1.0, 1.0)  # every object drops: no uncertainty
    with pytest.raises(ValueError):
        paired_bootstrap(orig, edited[:5])


def _pred(
    model: str, obj: str, attribute: str, level: str, hit1: bool, hit5: bool | None = True, seed: int = 0
) -> dict:
    return {
        "model": model,
        "edit_id": f"{obj}|{attribute}|{level}|{seed}",
        "object_id": obj,
        "label": "x",
        "attribute": attribute,
        "level": level,
        "value": float(level) if level[0].isdigit() else 0.0,
        "hit1": hit1,
        "hit5": hit5,
    }


def test_leaderboard_pairs_objects_and_pools_levels() -> None:
    rows = [_pred("m", f"o{i}", "original", "original", True) for i in range(4)]
    rows += [_pred("m", f"o{i}", "size", "0.5", i < 3) for i in range(4)]  # 3/4 right
    rows += [_pred("m", f"o{i}", "size", "0.1", i < 1, hit5=i < 2) for i in range(4)]  # 1/4 right
    rows += [_pred("m", "o0", "size", "0.1", False, seed=1)]  # a second seed of o0: averaged to 0.5
    rows += [_pred("m", "o9", "size", "0.5", False)]  # no original: not paired, not counted
    board = {(r["attribute"], r["level"]): r for r in leaderboard(rows, skipped={"m": 2})}
    assert [k for k in board] == [("original", "original"), ("size", "0.1"), ("size", "0.5"), ("size", "all")]
    half = board[("size", "0.5")]
    assert half["objects"] == 4 and half["images"] == 5 and half["top1"] == 0.75 and half["drop_top1"] == 0.25
    assert half["drop_low"] <= 0.25 <= half["drop_high"] and half["skipped"] == 2
    tenth = board[("size", "0.1")]
    assert tenth["top1"] == pytest.approx(0.5 / 4) and tenth["top5"] == pytest.approx(2 / 4)
    pooled = board[("size", "all")]
    assert pooled["top1"] == pytest.approx((0.75 + 0.5 / 4) / 2)
    assert board[("original", "original")]["drop_top1"] == 0.0
    assert mean_drops(list(board.values()))["m"]["size"] == pytest.approx(pooled["drop_top1"])


def test_top5_is_absent_below_five_classes() -> None:
    rows = [_pred("m", "o", "original", "original", True, None), _pred("m", "o", "flip", "1", False, None)]
    assert all(r["top5"] is None and r["drop_top5"] is None for r in leaderboard(rows))


def test_levels_sort_numbers_then_editor_order() -> None:
    assert level_order(["0.5", "flat", "0.1", "clutter", "1", "all"]) == ["0.1", "0.5", "1", "flat", "clutter"]


# ---------------------------------------------------------------- predictions stage


@pytest.fixture()
def small_cnn_ckpt(tmp_path: Path) -> str:
    import torch

    from trustflow.models.vision import build_classifier, save_checkpoint

    torch.manual_seed(0)
    model = build_classifier("small_cnn?width=4", num_classes=len(CLASSES))
    return f"ckpt:{save_checkpoint(tmp_path / 'cnn.pt', model, 'small_cnn?width=4')}"


def test_predictions_resume_without_duplicates(tmp_path: Path, local_settings, small_cnn_ckpt: str) -> None:  # noqa: ANN001
    from trustflow.tasks.attributes.evaluate import plan_model, read_predictions, run_predictions

    store = ArtifactStore(settings=local_settings)
    edits = write_edits(store, StageRef("attribute_robustness", "e-test", "edits"), edit_rows(objects(3)))
    preds = StageRef("attribute_robustness", "infer-test", "predictions")
    plan = plan_model(store, small_cnn_ckpt, CLASSES)
    assert plan.classes == tuple(sorted(CLASSES)) and plan.image_size is None
    first = run_predictions(store, edits, preds, [plan], shard_size=4, parallel=False)
    assert first["rows_written"] == 18 and first["chunks"] == 5
    rows = read_predictions(store, preds, [small_cnn_ckpt], edits)
    assert len(rows) == 18 and len({r["pred_key"] for r in rows}) == 18
    assert all(r["hit5"] is None and len(r["top5"]) == 3 for r in rows)  # 3 classes: no top-5
    again = run_predictions(store, edits, preds, [plan], shard_size=4, parallel=False)
    assert again["rows_written"] == 0 and again["chunks"] == 0
    assert store.read_table(preds).num_rows == 18
    # a different shard size finds nothing to do either (keys, not chunk names, decide)
    assert run_predictions(store, edits, preds, [plan], shard_size=7, parallel=False)["rows_written"] == 0


def test_a_training_run_checkpoint_is_planned_from_the_store(local_settings, small_cnn_ckpt: str) -> None:  # noqa: ANN001
    """``run:<id>/best`` is read from the store (its bytes travel with the plan); before the
    fix its class count was read from a temporary copy already deleted."""
    from trustflow.models.vision import load_classifier
    from trustflow.models.vision.resolve import store_run_checkpoint
    from trustflow.tasks.attributes.evaluate import _cached_model, plan_model

    store = ArtifactStore(settings=local_settings)
    model = load_classifier(small_cnn_ckpt)
    store_run_checkpoint(store, "train-x", "best", model, "small_cnn?width=4", {"run_id": "train-x"})
    plan = plan_model(store, "run:train-x/best", CLASSES, image_size=32)
    assert plan.num_classes == 3 and plan.portable.blob and plan.image_size == 32
    assert _cached_model(plan).num_classes == 3


def test_a_model_with_the_wrong_class_count_is_refused(local_settings, small_cnn_ckpt: str) -> None:  # noqa: ANN001
    from trustflow.tasks.attributes.evaluate import plan_model

    store = ArtifactStore(settings=local_settings)
    with pytest.raises(ConfigError, match="has 3 outputs; the edits have 2 labels"):
        plan_model(store, small_cnn_ckpt, ["disc", "square"])
    with pytest.raises(InputError, match="nope.pt"):
        plan_model(store, "ckpt:/nonexistent/nope.pt", CLASSES)


def test_edits_without_originals_are_refused(local_settings) -> None:  # noqa: ANN001
    from trustflow.tasks.attributes.evaluate import edit_index

    store = ArtifactStore(settings=local_settings)
    rows = [r for r in edit_rows(objects(1)) if r["attribute"] != "original"]
    edits = write_edits(store, StageRef("attribute_robustness", "e-noorig", "edits"), rows)
    with pytest.raises(InputError, match="no original"):
        edit_index(store, edits)


def test_imagenet_classifiers_name_the_bundled_photos() -> None:
    """The two real classifiers, through the evaluation's own preprocessing (whole frame,
    224²) and label map: chelsea is a cat, the coffee an espresso, the motorcycle a moped or
    motor scooter (any of a group is a hit)."""
    from skimage import data

    from trustflow.models.vision.resolve import PortableModel
    from trustflow.tasks.attributes.evaluate import ModelPlan, load_model, predict
    from trustflow.tests.attribute_fixtures import png

    photos = {"Egyptian cat": data.chelsea(), "espresso": data.coffee(), "motorcycle": data.stereo_motorcycle()[0]}
    rows = [
        {"edit_id": k, "object_id": k, "label": k, "attribute": "original", "level": "original", "value": 0.0}
        | {"image_png": png(v)}
        for k, v in photos.items()
    ]
    lm = LabelMap.build(photos, imagenet_classes(), imagenet=True)
    for spec in ("mobilenet_v2?pretrained=true", "efficientnet_lite0?pretrained=true"):
        plan = ModelPlan(
            spec, PortableModel(spec, spec), 1000, imagenet_classes(), {k: tuple(v) for k, v in lm.hits.items()}, 224
        )
        out = predict(plan, load_model(spec, 1000), rows)
        assert all(r["hit1"] and r["hit5"] for r in out), [(r["label"], r["top5"][:2]) for r in out]
        assert all(r["image_size"] == 224 for r in out)
