"""COCO-format detection sets: ``instances_<split>.json`` plus an image folder.

Two layouts are recognised:

* a plain set: ``<root>/annotations/instances_<split>.json`` with images in ``<root>/<split>/``
  (or ``<root>/images/``);
* the COCO-O layout: one sub-folder per domain, each a plain set (``<domain>/val2017/`` and
  ``<domain>/annotations/instances_val2017.json``); the folder name becomes ``domain``.

Annotations are validated before any image is read. With ``on_invalid="error"`` (the
default) missing fields, unknown image or category ids, duplicate ids, boxes with a negative
size or outside the image, image paths that leave the source folder (absolute, ``..`` or
symlinks out) and missing image files raise an ``InputError`` naming the JSON file and the
offending entry. With ``on_invalid="drop"`` the offending entry is dropped instead — an image whose
file is missing takes its annotations with it — and every drop is counted by reason in
``CocoSplit.drops`` (the ingest summary reports them): never a silent drop. Problems that
make the whole file meaningless (not JSON, no ``images`` list, duplicate category ids,
differing label maps across domains) are errors under both policies.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from trustflow.data.schemas import COCO_ANNOTATIONS, COCO_CATEGORIES
from trustflow.errors import ConfigError, InputError

BOX_TOLERANCE_PX = 1.0  # COCO's own annotations overshoot image borders by rounding
OnInvalid = Literal["error", "drop"]
ON_INVALID: tuple[OnInvalid, ...] = ("error", "drop")


@dataclass
class CocoImage:
    image_id: int
    file_name: str
    width: int
    height: int
    path: Path


@dataclass
class CocoSplit:
    """One annotation file: its domain, split, images, annotations and categories."""

    json_path: Path
    domain: str
    split: str
    images: list[CocoImage] = field(default_factory=list)
    annotations: pa.Table | None = None
    categories: pa.Table | None = None
    drops: Counter[str] = field(default_factory=Counter)  # reason -> entries dropped (on_invalid="drop")
    # ann_id -> the annotation's raw ``segmentation`` (polygons or RLE), when it has one;
    # decoded and checked only by the readers that need masks (segmentation_mask)
    segmentations: dict[int, Any] = field(default_factory=dict)


class _Skip(Exception):
    """An entry was dropped under on_invalid="drop"."""


def _problem(split: CocoSplit, on_invalid: OnInvalid, message: str, reason: str) -> None:
    if on_invalid == "error":
        raise InputError(message)
    split.drops[reason] += 1
    raise _Skip


def _require(entry: Any, where: str, fields: dict[str, type | tuple[type, ...]]) -> None:
    if not isinstance(entry, dict):
        raise InputError(f"{where}: expected a JSON object")
    for name, kind in fields.items():
        if name not in entry:
            raise InputError(f"{where}: missing field {name!r}")
        if not isinstance(entry[name], kind) or isinstance(entry[name], bool) and kind is not bool:
            raise InputError(f"{where}: field {name!r} has the wrong type ({type(entry[name]).__name__})")


def _find_annotation_files(root: Path) -> list[tuple[Path, str]]:
    """(instances json, domain) pairs for a plain set or a COCO-O layout."""

    def visible(p: Path) -> bool:  # hidden files are not part of the dataset id (sources.fingerprint)
        return not any(part.startswith(".") for part in p.relative_to(root).parts)

    direct = sorted(p for p in (root / "annotations").glob("instances_*.json") if visible(p))
    if direct:
        return [(p, "") for p in direct]
    nested = sorted(p for p in root.glob("*/annotations/instances_*.json") if visible(p))
    if nested:
        return [(p, p.parent.parent.name) for p in nested]
    raise InputError(f"{root}: no annotations/instances_*.json (plain COCO) or */annotations/instances_*.json (COCO-O)")


def _image_dir(set_root: Path, split: str) -> Path:
    for candidate in (set_root / split, set_root / "images" / split, set_root / "images"):
        if candidate.is_dir():
            return candidate
    raise InputError(f"{set_root}: no image folder for split {split!r} (tried {split}/, images/{split}/, images/)")


def _confined_image_path(
    where: str,
    img: dict[str, Any],
    image_dir: Path,
    source_root: Path,
    out: CocoSplit,
    on_invalid: OnInvalid,
) -> Path:
    """``image_dir / file_name`` resolved, refused unless it stays inside the source folder.

    ``file_name`` comes from the annotation file, which may be hostile: an absolute path or
    ``../`` (directly or through a symlink) would make the ingest read and store any file the
    user can read. The path is resolved (symlinks included) and must lie under the resolved
    source folder, and not in a hidden file or folder there: the dataset id is a fingerprint
    of the source folder's non-hidden files, so only those may be ingested."""
    file_name = img["file_name"]
    path = image_dir / file_name
    root = source_root.resolve()
    rel: Path | None
    try:
        rel = path.resolve().relative_to(root)
    except (ValueError, OSError, RuntimeError):  # outside the root, or a symlink loop
        rel = None
    if rel is None:
        _problem(
            out,
            on_invalid,
            f"{where}: image id {img['id']}: file_name {file_name!r} resolves outside the dataset folder {source_root} "
            "(absolute paths, '..' and symlinks out of the folder are refused)",
            "image_path_outside_dataset",
        )
    elif any(part.startswith(".") for part in rel.parts):
        _problem(
            out,
            on_invalid,
            f"{where}: image id {img['id']}: file_name {file_name!r} is a hidden file or in a hidden folder, "
            "which the dataset id does not cover",
            "image_path_hidden",
        )
    assert rel is not None  # _problem raised otherwise
    return root / rel  # resolved: what was checked is what the worker reads


def load_coco_split(
    json_path: Path, domain: str, on_invalid: OnInvalid = "error", source_root: Path | None = None
) -> CocoSplit:
    """Parse and validate one instances JSON; images are located but not read. Image paths
    must stay inside ``source_root`` (default: the set's folder, the JSON's grandparent)."""
    split = json_path.stem.removeprefix("instances_")
    try:
        doc = json.loads(json_path.read_bytes())
    except json.JSONDecodeError as exc:
        raise InputError(f"{json_path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(doc, dict):
        raise InputError(f"{json_path}: top level must be an object")
    for key in ("images", "annotations", "categories"):
        if not isinstance(doc.get(key), list):
            raise InputError(f"{json_path}: missing field {key!r} (a list)")
    set_root = json_path.parent.parent
    image_dir = _image_dir(set_root, split)
    out = CocoSplit(json_path=json_path, domain=domain, split=split)

    cat_ids: dict[int, int] = {}
    cats: dict[str, list] = {"category_id": [], "name": [], "supercategory": []}
    for i, cat in enumerate(doc["categories"]):
        where = f"{json_path}: categories[{i}]"
        _require(cat, where, {"id": int, "name": str})
        if cat["id"] in cat_ids:
            raise InputError(f"{where}: duplicate category id {cat['id']}")
        cat_ids[cat["id"]] = i
        cats["category_id"].append(cat["id"])
        cats["name"].append(cat["name"])
        cats["supercategory"].append(cat.get("supercategory"))
    out.categories = pa.table(cats, schema=COCO_CATEGORIES.schema)

    sizes: dict[int, tuple[int, int]] = {}
    dropped_images: set[int] = set()
    for i, img in enumerate(doc["images"]):
        where = f"{json_path}: images[{i}]"
        try:
            try:
                _require(img, where, {"id": int, "file_name": str, "width": int, "height": int})
            except InputError as exc:
                _problem(out, on_invalid, str(exc), "image_malformed")
            if img["id"] in sizes:
                _problem(out, on_invalid, f"{where}: duplicate image id {img['id']}", "image_duplicate_id")
            try:
                path = _confined_image_path(where, img, image_dir, source_root or set_root, out, on_invalid)
                if not path.is_file():
                    _problem(out, on_invalid, f"{where}: image file {path} not found", "image_file_missing")
            except _Skip:
                dropped_images.add(img["id"])  # its annotations go with it
                raise
        except _Skip:
            continue
        sizes[img["id"]] = (img["width"], img["height"])
        out.images.append(CocoImage(img["id"], img["file_name"], img["width"], img["height"], path))

    cols: dict[str, list] = {name: [] for name in COCO_ANNOTATIONS.names}
    ann_ids: set[int] = set()
    for i, ann in enumerate(doc["annotations"]):
        where = f"{json_path}: annotations[{i}]"
        try:
            row = _check_annotation(ann, where, out, on_invalid, ann_ids, sizes, dropped_images, cat_ids)
        except _Skip:
            continue
        if ann.get("segmentation"):
            out.segmentations[row["id"]] = ann["segmentation"]
        cols["ann_id"].append(row["id"])
        cols["image_id"].append(row["image_id"])
        cols["domain"].append(domain)
        cols["split"].append(split)
        cols["category_id"].append(row["category_id"])
        cols["bbox"].append(row["bbox"])
        cols["area"].append(row["area"])
        cols["iscrowd"].append(row["iscrowd"])
    out.annotations = pa.table(cols, schema=COCO_ANNOTATIONS.schema)
    return out


def _check_annotation(
    ann: Any,
    where: str,
    out: CocoSplit,
    on_invalid: OnInvalid,
    ann_ids: set[int],
    sizes: dict[int, tuple[int, int]],
    dropped_images: set[int],
    cat_ids: dict[int, int],
) -> dict[str, Any]:
    """One validated annotation (bbox as floats, area, iscrowd), or a problem (raise / drop)."""
    num = (int, float)
    try:
        _require(ann, where, {"id": int, "image_id": int, "category_id": int, "bbox": list})
    except InputError as exc:
        _problem(out, on_invalid, str(exc), "annotation_malformed")
    if ann["id"] in ann_ids:
        _problem(out, on_invalid, f"{where}: duplicate annotation id {ann['id']}", "annotation_duplicate_id")
    ann_ids.add(ann["id"])
    if ann["image_id"] in dropped_images:  # its image was dropped (counted there); its boxes go with it
        out.drops["annotation_of_dropped_image"] += 1
        raise _Skip
    if ann["image_id"] not in sizes:
        _problem(out, on_invalid, f"{where}: unknown image_id {ann['image_id']}", "annotation_unknown_image")
    if ann["category_id"] not in cat_ids:
        _problem(out, on_invalid, f"{where}: unknown category_id {ann['category_id']}", "annotation_unknown_category")
    bbox = ann["bbox"]
    if len(bbox) != 4 or not all(isinstance(v, num) and not isinstance(v, bool) for v in bbox):
        _problem(out, on_invalid, f"{where}: bbox must be 4 numbers [x, y, w, h]", "annotation_bad_bbox")
    x, y, w, h = (float(v) for v in bbox)
    width, height = sizes[ann["image_id"]]
    t = BOX_TOLERANCE_PX
    if w < 0 or h < 0:
        _problem(
            out,
            on_invalid,
            f"{where}: bbox {bbox} has a negative width or height (COCO boxes are [x, y, width, height], both >= 0)",
            "annotation_negative_box_size",
        )
    if x < -t or y < -t or x + w > width + t or y + h > height + t:
        _problem(
            out,
            on_invalid,
            f"{where}: bbox {bbox} lies outside image {ann['image_id']} ({width}x{height})",
            "annotation_box_outside_image",
        )
    area = ann.get("area", w * h)
    if not isinstance(area, num) or isinstance(area, bool) or area < 0:
        _problem(out, on_invalid, f"{where}: field 'area' must be a non-negative number", "annotation_bad_area")
    iscrowd = ann.get("iscrowd", 0)
    if iscrowd not in (0, 1, True, False):
        _problem(out, on_invalid, f"{where}: field 'iscrowd' must be 0 or 1", "annotation_bad_iscrowd")
    return {
        "id": ann["id"],
        "image_id": ann["image_id"],
        "category_id": ann["category_id"],
        "bbox": [x, y, w, h],
        "area": float(area),
        "iscrowd": bool(iscrowd),
    }


def segmentation_mask(segmentation: Any, height: int, width: int, where: str) -> tuple[np.ndarray, str]:
    """A COCO ``segmentation`` as an H×W bool mask and its kind (``coco-polygon``/``coco-rle``).

    Polygons are lists of flat ``[x1, y1, x2, y2, ...]`` lists (≥ 3 points each, several
    parts are unioned); RLE is ``{"size": [h, w], "counts": ...}`` with ``counts`` a list
    (uncompressed) or a string (compressed). Decoding is pycocotools', the reference. A
    malformed value, or an RLE whose size is not the image's, is an ``InputError`` naming
    ``where`` (the JSON file and annotation index)."""
    from pycocotools import mask as mask_utils

    num = (int, float)
    if isinstance(segmentation, list):
        if not segmentation or not all(isinstance(p, list) for p in segmentation):
            raise InputError(f"{where}: segmentation must be a list of polygons [[x1, y1, x2, y2, ...], ...] or RLE")
        for poly in segmentation:
            if len(poly) < 6 or len(poly) % 2 or not all(isinstance(v, num) and not isinstance(v, bool) for v in poly):
                raise InputError(
                    f"{where}: segmentation polygon needs an even count (>= 6) of numbers, got {poly!r:.80}"
                )
        rles = mask_utils.frPyObjects([[float(v) for v in p] for p in segmentation], height, width)
        mask = mask_utils.decode(mask_utils.merge(rles))
        kind = "coco-polygon"
    elif isinstance(segmentation, dict):
        size, counts = segmentation.get("size"), segmentation.get("counts")
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size)):
            raise InputError(f"{where}: RLE segmentation needs 'size': [height, width]")
        if list(size) != [height, width]:
            raise InputError(f"{where}: RLE size {size} is not the image's [height, width] = [{height}, {width}]")
        if isinstance(counts, list):
            if not all(isinstance(v, int) and v >= 0 for v in counts) or sum(counts) != height * width:
                raise InputError(f"{where}: RLE counts must be non-negative integers summing to height*width")
            rle = mask_utils.frPyObjects({"size": size, "counts": counts}, height, width)
        elif isinstance(counts, str):
            rle = {"size": size, "counts": counts.encode()}
        else:
            raise InputError(f"{where}: RLE segmentation needs 'counts' (a list or a compressed string)")
        try:
            mask = mask_utils.decode(rle)
        except Exception as exc:  # pycocotools raises bare errors on corrupt strings
            raise InputError(f"{where}: RLE counts do not decode ({type(exc).__name__})") from None
        kind = "coco-rle"
    else:
        raise InputError(f"{where}: segmentation must be polygons (a list) or RLE (an object)")
    if mask.ndim == 3:
        mask = mask.max(axis=2)
    return mask.astype(bool), kind


def load_coco(root: Path, on_invalid: OnInvalid = "error") -> list[CocoSplit]:
    """Every annotated split under ``root`` (a plain COCO set or a COCO-O domain tree)."""
    if on_invalid not in ON_INVALID:
        raise ConfigError(f"--on-invalid must be one of {', '.join(ON_INVALID)}, got {on_invalid!r}")
    if not root.is_dir():
        raise InputError(f"{root}: not a directory (a COCO set is a folder with annotations/instances_*.json)")
    splits = [load_coco_split(p, domain, on_invalid, root) for p, domain in _find_annotation_files(root)]
    category_lists = {
        s.json_path: tuple(
            sorted(zip(s.categories["category_id"].to_pylist(), s.categories["name"].to_pylist(), strict=True))
        )
        for s in splits
        if s.categories is not None
    }
    if len(set(category_lists.values())) > 1:
        first, *rest = category_lists
        other = next(p for p in rest if category_lists[p] != category_lists[first])
        raise InputError(f"{other}: categories (id, name) differ from {first}; all domains must share one label map")
    return splits
