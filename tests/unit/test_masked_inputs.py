"""Inputs of the attribute-robustness pipeline: every way to a ``masked_objects`` row.

The row builders of each ingest kind are called directly (what a Ray worker runs), so these
stay fast; bad input must be an ``InputError`` naming the file and the field or entry.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trustflow.data.loaders.coco import load_coco
from trustflow.data.loaders.masked import scan_boxes, scan_maskfolder
from trustflow.data.masked_objects import decode_image, decode_mask, grabcut_mask
from trustflow.data.schemas import MASKED_OBJECTS
from trustflow.data.synthetic_objects import CLASSES, synthetic_object
from trustflow.errors import InputError
from trustflow.tasks.ingest.kinds.coco_masks import build_masked_rows
from trustflow.tasks.ingest.kinds.grabcut import build_grabcut_rows
from trustflow.tasks.ingest.kinds.maskfolder import build_maskfolder_rows
from trustflow.tasks.ingest.kinds.synthetic_objects import build_synthetic_rows, read_settings


def _scene(w: int = 48, h: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """A green square on a noisy blue background, and its exact mask."""
    rng = np.random.default_rng(0)
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 2] = rng.integers(100, 200, (h, w))
    mask = np.zeros((h, w), bool)
    mask[10:30, 12:32] = True
    img[mask] = (30, 220, 40)
    return img, mask


def _coco(tmp_path: Path, anns: list[dict]) -> Path:
    img, _ = _scene()
    (tmp_path / "val").mkdir(parents=True)
    (tmp_path / "annotations").mkdir()
    Image.fromarray(img).save(tmp_path / "val" / "a.png")
    doc = {
        "images": [{"id": 1, "file_name": "a.png", "width": 48, "height": 40}],
        "annotations": anns,
        "categories": [{"id": 1, "name": "square"}, {"id": 2, "name": "speck"}],
    }
    (tmp_path / "annotations" / "instances_val.json").write_text(json.dumps(doc))
    return tmp_path


def _rows(root: Path, select: str = "largest", min_area: float = 0.02) -> dict:
    (split,) = load_coco(root)
    assert split.annotations is not None and split.categories is not None
    names = dict(zip(split.categories["category_id"].to_pylist(), split.categories["name"].to_pylist(), strict=True))
    anns = [
        (a["ann_id"], names[a["category_id"]], split.segmentations[a["ann_id"]], f"ann {a['ann_id']}")
        for a in split.annotations.to_pylist()
        if a["ann_id"] in split.segmentations
    ]
    img = split.images[0]
    return build_masked_rows(([(img.path, img.width, img.height, "val-1", anns)], select, min_area)).to_pydict()


SQUARE_POLY = [[12, 10, 32, 10, 32, 30, 12, 30]]


def _rle_of(mask: np.ndarray) -> list[int]:
    """Uncompressed COCO RLE (column-major runs, starting with zeros)."""
    flat = mask.T.reshape(-1).astype(np.uint8)
    counts, current, run = [], 0, 0
    for v in flat:
        if v != current:
            counts.append(run)
            current, run = v, 0
        run += 1
    counts.append(run)
    return counts


def test_coco_polygon_and_rle_become_exact_masks_largest_instance_first(tmp_path: Path) -> None:
    _, square = _scene()
    speck = np.zeros_like(square)
    speck[35:38, 40:44] = True
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [12, 10, 20, 20], "segmentation": SQUARE_POLY},
        {
            "id": 2,
            "image_id": 1,
            "category_id": 2,
            "bbox": [40, 35, 4, 3],
            "segmentation": {"size": [40, 48], "counts": _rle_of(speck)},
        },
    ]
    rows = _rows(_coco(tmp_path, anns), "all", 0.0)
    assert rows["object_id"] == ["val-1-1", "val-1-2"]
    assert rows["mask_source"] == ["coco-polygon", "coco-rle"]
    assert np.array_equal(decode_mask(rows["mask_png"][1]), speck)  # RLE is exact
    # pycocotools rasterises a polygon's edges inclusively: the square plus at most its border
    poly = decode_mask(rows["mask_png"][0])
    assert poly[square].all() and (poly & ~square).sum() <= 2 * (20 + 21)
    largest = _rows(tmp_path, "largest", 0.0)
    assert largest["object_id"] == ["val-1-1"] and largest["label"] == ["square"]
    assert _rows(tmp_path, "all", 0.05)["object_id"] == ["val-1-1"]  # min_area drops the speck


@pytest.mark.parametrize(
    ("segmentation", "message"),
    [
        ([[1, 2, 3]], "even count"),
        ({"size": [10, 10], "counts": [100]}, r"RLE size \[10, 10\] is not the image's"),
        ({"size": [40, 48], "counts": [5, 5]}, "summing to height"),
        ("nope", "polygons"),
    ],
)
def test_coco_bad_segmentation_names_the_annotation(tmp_path: Path, segmentation: object, message: str) -> None:
    anns = [{"id": 7, "image_id": 1, "category_id": 1, "bbox": [12, 10, 20, 20], "segmentation": segmentation}]
    with pytest.raises(InputError, match=rf"ann 7: .*{message}"):
        _rows(_coco(tmp_path, anns))


def _maskfolder(tmp_path: Path) -> Path:
    img, mask = _scene()
    (tmp_path / "square").mkdir()
    Image.fromarray(img).save(tmp_path / "square" / "x.jpg", quality=95)
    Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "square" / "x.mask.png")
    return tmp_path


def test_maskfolder_pairs_images_with_their_masks(tmp_path: Path) -> None:
    files = scan_maskfolder(_maskfolder(tmp_path))
    assert [(f.object_id, f.label) for f in files] == [("square/x", "square")]
    rows = build_maskfolder_rows(files).to_pydict()
    assert rows["mask_source"] == ["mask-file"] and rows["box"] == [None]
    assert np.array_equal(decode_mask(rows["mask_png"][0]), _scene()[1])
    assert decode_image(rows["image_png"][0]).shape == (40, 48, 3)


def test_maskfolder_bad_inputs_name_the_file(tmp_path: Path) -> None:
    root = _maskfolder(tmp_path)
    Image.fromarray(_scene()[0]).save(root / "square" / "lonely.png")
    with pytest.raises(InputError, match=r"lonely\.png: no mask file lonely\.mask\.png"):
        scan_maskfolder(root)
    (root / "square" / "lonely.png").unlink()
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(root / "square" / "ghost.mask.png")
    with pytest.raises(InputError, match=r"ghost\.mask\.png: a mask file without its image"):
        scan_maskfolder(root)
    (root / "square" / "ghost.mask.png").unlink()
    Image.fromarray(np.full((10, 10), 255, np.uint8)).save(root / "square" / "x.mask.png")
    with pytest.raises(InputError, match=r"x\.mask\.png: mask is 10x10 but its image is 48x40"):
        build_maskfolder_rows(scan_maskfolder(root))
    Image.fromarray(np.zeros((40, 48), np.uint8)).save(root / "square" / "x.mask.png")
    with pytest.raises(InputError, match=r"x\.jpg: the object mask is empty"):
        build_maskfolder_rows(scan_maskfolder(root))


def _boxes(tmp_path: Path, entries: list[dict]) -> Path:
    Image.fromarray(_scene()[0]).save(tmp_path / "a.png")
    (tmp_path / "boxes.json").write_text(json.dumps(entries))
    return tmp_path


def test_grabcut_refines_a_box_and_records_it(tmp_path: Path) -> None:
    root = _boxes(tmp_path, [{"file": "a.png", "label": "square", "box": [8, 6, 28, 28]}])
    rows = build_grabcut_rows(scan_boxes(root)).to_pydict()
    assert rows["mask_source"] == ["grabcut"] and rows["box"] == [[8.0, 6.0, 28.0, 28.0]]
    mask, truth = decode_mask(rows["mask_png"][0]), _scene()[1]
    iou = (mask & truth).sum() / (mask | truth).sum()
    assert iou > 0.9, iou
    again = build_grabcut_rows(scan_boxes(root)).to_pydict()
    assert again["mask_png"] == rows["mask_png"]  # deterministic


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"file": "a.png", "label": "sq", "box": [1, 2, 3]}, r"\[0\]: field 'box' must be 4 numbers"),
        ({"file": "a.png", "box": [1, 2, 3, 4]}, r"\[0\]: field 'label'"),
        ({"file": "../x.png", "label": "sq", "box": [1, 2, 3, 4]}, "outside the folder"),
        ({"file": "b.png", "label": "sq", "box": [1, 2, 3, 4]}, "b.png not found"),
    ],
)
def test_boxes_bad_entries_name_the_entry(tmp_path: Path, entry: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        scan_boxes(_boxes(tmp_path, [entry]))


def test_grabcut_box_outside_the_image_is_an_input_error() -> None:
    with pytest.raises(InputError, match=r"a\.png: box \[40, 30, 20, 20\] lies outside the 48x40 image"):
        grabcut_mask(_scene()[0], (40, 30, 20, 20), "a.png")


def test_synthetic_objects_are_deterministic_with_exact_masks(tmp_path: Path) -> None:
    label, img, mask = synthetic_object(7, seed=3, size=48)
    again = synthetic_object(7, seed=3, size=48)
    assert label == CLASSES[7 % len(CLASSES)] and again[0] == label
    assert np.array_equal(again[1], img) and np.array_equal(again[2], mask)
    assert 0.08 <= mask.mean() <= 0.4
    assert not np.array_equal(synthetic_object(7, seed=4, size=48)[1], img)
    table = build_synthetic_rows((3, 48, 0, 10))
    assert table.schema.equals(MASKED_OBJECTS.schema) and table.num_rows == 10
    assert set(table["label"].to_pylist()) == set(CLASSES)
    (tmp_path / "s.json").write_text('{"seed": 1, "per_class": "many"}')
    with pytest.raises(InputError, match=r"s\.json: field 'per_class'"):
        read_settings(tmp_path / "s.json")
