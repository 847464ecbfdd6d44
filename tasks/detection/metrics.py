"""COCO bbox metrics for detector robustness evaluation (COCO-O style).

The twelve numbers are the standard COCO bbox summary (``STAT_NAMES``), computed by one of two
engines on the same prepared inputs:

* ``"faster"`` (default): ``faster_coco_eval``, whose matching and accumulation run in C++;
* ``"pycocotools"``: the reference implementation, kept for parity checks.

Both engines accept malformed input quietly or fail with a bare ``assert``/``KeyError``, and
both mutate the dicts they are given (they add ``ignore``, ``id``, ``area``, ...). So every
input goes through one validation pass here first, which copies it into fresh, minimal dicts
and raises ``InputError`` naming the source and the offending entry. Two deliberate choices:

* ground-truth annotation ids are renumbered 1..N. Both engines record a match by storing the
  matched annotation's id and treat id 0 as "unmatched", so an annotation with id 0 (or two
  annotations sharing an id) silently skews AP; the ids are never reported, so renumbering
  costs nothing;
* detection dicts carry only what bbox evaluation reads (no synthetic ``segmentation``
  polygon, which both engines' ``loadRes`` would add and never use for bbox IoU).

COCO reports ``-1`` for a number with no ground truth to score against (e.g. APs when no
object is small); ``CocoStats`` keeps that convention.

Robustness summaries: COCO-O (Mao et al., ICCV 2023) observes that detectors' OOD mAP follows
a linear trend in their ID (COCO val) mAP, roughly OOD ≈ 0.45 · ID, and reports *effective
robustness* as the distance above that line. ``effective_robustness`` uses a = 0, b = 0.45 by
default; ``fit_trend`` fits the line to one's own set of models instead.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from trustflow.errors import ConfigError, InputError

log = logging.getLogger(__name__)

Engine = Literal["faster", "pycocotools"]
ENGINES: tuple[str, ...] = ("faster", "pycocotools")

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
"""The 12 COCO bbox summary numbers, in the order both engines' ``stats`` array holds them."""

DETECTION_FIELDS = ("image_id", "category_id", "bbox", "score")


@dataclass(frozen=True)
class CocoStats:
    """The 12 COCO bbox numbers as fractions in [0, 1]; -1.0 where there is no ground truth."""

    AP: float
    AP50: float
    AP75: float
    APs: float
    APm: float
    APl: float
    AR1: float
    AR10: float
    AR100: float
    ARs: float
    ARm: float
    ARl: float

    @classmethod
    def from_sequence(cls, values: Sequence[float]) -> CocoStats:
        if len(values) < len(STAT_NAMES):
            raise ValueError(f"expected {len(STAT_NAMES)} COCO stats, got {len(values)}")
        return cls(*(float(v) for v in values[: len(STAT_NAMES)]))

    def as_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def as_tuple(self) -> tuple[float, ...]:
        return astuple(self)


# --------------------------------------------------------------------------------------------
# validation: copy inputs into minimal fresh dicts, with errors that name the entry


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _check_boxes(boxes: list[Any], source: str, where: str) -> np.ndarray:
    """The boxes as an (n, 4) float array; InputError naming the first bad one otherwise."""
    try:
        arr = np.asarray(boxes)
        ok = arr.ndim == 2 and arr.shape[1] == 4 and arr.dtype.kind in "iuf"
    except (ValueError, TypeError):  # ragged lists
        ok = False
    if ok:
        arr = arr.astype(np.float64, copy=False)
        bad_rows = ~np.isfinite(arr).all(axis=1) | (arr[:, 2] < 0) | (arr[:, 3] < 0)
        if not bad_rows.any():
            return arr
        i = int(np.flatnonzero(bad_rows)[0])
        raise InputError(f"{source}: {where}[{i}] bbox {boxes[i]!r} must be finite with width, height >= 0")
    for i, box in enumerate(boxes):
        if not isinstance(box, (list, tuple, np.ndarray)) or len(box) != 4 or not all(_is_number(v) for v in box):
            raise InputError(f"{source}: {where}[{i}] bbox {box!r} is not a list of 4 numbers [x, y, w, h]")
    raise InputError(f"{source}: {where} bboxes are not lists of 4 numbers")  # pragma: no cover


def _check_ints(values: list[Any], source: str, where: str, name: str) -> list[int]:
    """The values as Python ints; InputError naming the first non-integer."""
    arr = np.asarray(values)
    if arr.ndim == 1 and arr.dtype.kind in "iu":
        return arr.tolist()
    for i, v in enumerate(values):
        if not _is_int(v):
            raise InputError(f"{source}: {where}[{i}] {name} {v!r} is not an integer")
    return [int(v) for v in values]  # pragma: no cover - mixed int/bool arrays


def _column(records: list[Any], key: str, source: str, where: str) -> list[Any]:
    """``[r[key] for r in records]``, or InputError naming the first record lacking the key."""
    try:
        return [r[key] for r in records]
    except (KeyError, TypeError, IndexError):
        for i, r in enumerate(records):
            if not isinstance(r, dict):
                raise InputError(f"{source}: {where}[{i}] is not an object") from None
            if key not in r:
                raise InputError(f"{source}: {where}[{i}] missing field {key!r}") from None
        raise


def _unique_ids(records: list[Any], source: str, where: str) -> list[int]:
    ids = _check_ints(_column(records, "id", source, where), source, where, "id")
    if len(set(ids)) != len(ids):
        seen: set[int] = set()
        for i, v in enumerate(ids):
            if v in seen:
                raise InputError(f"{source}: {where}[{i}] repeats id {v}")
            seen.add(v)
    return ids


@dataclass(frozen=True)
class _Prepared:
    images: list[dict[str, Any]]
    annotations: list[dict[str, Any]]
    categories: list[dict[str, Any]]
    image_ids: np.ndarray  # sorted
    category_ids: np.ndarray  # sorted


def _prepare_gt(gt: Any, source: str) -> _Prepared:
    """Validate a COCO instances dict and copy what bbox evaluation needs (see module doc)."""
    if not isinstance(gt, dict):
        raise InputError(f"{source}: expected a COCO instances object, got {type(gt).__name__}")
    for key in ("images", "annotations", "categories"):
        if key not in gt:
            raise InputError(f"{source}: missing field {key!r}")
        if not isinstance(gt[key], list):
            raise InputError(f"{source}: {key!r} must be a list, got {type(gt[key]).__name__}")
    if not gt["images"]:
        raise InputError(f"{source}: 'images' is empty: nothing to evaluate")

    img_ids = _unique_ids(gt["images"], source, "images")
    cat_ids = _unique_ids(gt["categories"], source, "categories")
    images = [{"id": i} for i in img_ids]
    categories = [{"id": c, "name": str(r.get("name", c))} for c, r in zip(cat_ids, gt["categories"], strict=True)]
    image_set, cat_set = np.unique(img_ids), np.unique(cat_ids)

    anns_in = gt["annotations"]
    annotations: list[dict[str, Any]] = []
    if anns_in:
        where = "annotations"
        a_img = np.asarray(_check_ints(_column(anns_in, "image_id", source, where), source, where, "image_id"))
        a_cat = np.asarray(_check_ints(_column(anns_in, "category_id", source, where), source, where, "category_id"))
        boxes = _check_boxes(_column(anns_in, "bbox", source, where), source, where)
        _check_members(a_img, image_set, source, where, "image_id", "'images'")
        _check_members(a_cat, cat_set, source, where, "category_id", "'categories'")
        area_out = _check_areas([a.get("area") for a in anns_in], boxes, source)
        crowd = [a.get("iscrowd", 0) for a in anns_in]
        try:
            crowd_ok = set(crowd) <= {0, 1}  # True/False hash and compare as 1/0
        except TypeError:  # an unhashable value (list, dict)
            crowd_ok = False
        if not crowd_ok:
            i = next(i for i, c in enumerate(crowd) if c not in (0, 1))
            raise InputError(f"{source}: annotations[{i}] iscrowd {crowd[i]!r} must be 0 or 1")
        annotations = [
            {"id": k + 1, "image_id": i, "category_id": c, "bbox": b, "area": a, "iscrowd": 1 if z else 0}
            for k, (i, c, b, a, z) in enumerate(
                zip(a_img.tolist(), a_cat.tolist(), boxes.tolist(), area_out, crowd, strict=True)
            )
        ]
    return _Prepared(images, annotations, categories, image_set, cat_set)


def _check_areas(areas: list[Any], boxes: np.ndarray, source: str) -> list[float]:
    """Ground-truth areas as floats, w*h where 'area' is missing (some exports drop it).

    COCO's own 'area' is the mask area, which decides the small/medium/large bucket; the box
    area is the next best thing.
    """
    arr = np.asarray(areas) if None not in areas else None
    if arr is not None and arr.ndim == 1 and arr.dtype.kind in "iuf":
        arr = arr.astype(np.float64, copy=False)
        if np.isfinite(arr).all() and (arr >= 0).all():
            return arr.tolist()
    out: list[float] = []
    for i, (given, fallback) in enumerate(zip(areas, (boxes[:, 2] * boxes[:, 3]).tolist(), strict=True)):
        if given is None:
            out.append(fallback)
        elif _is_number(given) and math.isfinite(given) and given >= 0:
            out.append(float(given))
        else:
            raise InputError(f"{source}: annotations[{i}] area {given!r} is not a number >= 0")
    return out


def _check_members(values: np.ndarray, allowed: np.ndarray, source: str, where: str, name: str, owner: str) -> None:
    """InputError naming the first value (and its entry) that ``allowed`` lacks."""
    if len(values) == 0:
        return
    bad = ~np.isin(values, allowed)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        n_bad = int(bad.sum())
        more = f" ({n_bad} entries in all)" if n_bad > 1 else ""
        raise InputError(f"{source}: {where}[{i}] {name} {int(values[i])} is not in {owner}{more}")


def _prepare_detections(detections: Any, source: str, gt: _Prepared, gt_source: str) -> list[dict[str, Any]]:
    """Validate COCO result dicts and copy them into fresh dicts the engines may mutate."""
    if not isinstance(detections, list):
        raise InputError(f"{source}: expected a list of detections, got {type(detections).__name__}")
    if not detections:
        return []
    where = ""
    img = np.asarray(_check_ints(_column(detections, "image_id", source, where), source, where, "image_id"))
    cat = np.asarray(_check_ints(_column(detections, "category_id", source, where), source, where, "category_id"))
    boxes = _check_boxes(_column(detections, "bbox", source, where), source, where)
    raw_scores = _column(detections, "score", source, where)
    scores = np.asarray(raw_scores)
    if not (scores.ndim == 1 and scores.dtype.kind in "iuf" and np.isfinite(scores).all()):
        for i, s in enumerate(raw_scores):
            if not _is_number(s) or not math.isfinite(s):
                raise InputError(f"{source}: [{i}] score {s!r} is not a finite number")
    _check_members(img, gt.image_ids, source, where, "image_id", f"the images of {gt_source}")
    _check_members(cat, gt.category_ids, source, where, "category_id", f"the categories of {gt_source}")
    areas = (boxes[:, 2] * boxes[:, 3]).tolist()
    return [
        {"id": k + 1, "image_id": i, "category_id": c, "bbox": b, "score": s, "area": a, "iscrowd": 0}
        for k, (i, c, b, s, a) in enumerate(
            zip(img.tolist(), cat.tolist(), boxes.tolist(), scores.astype(np.float64).tolist(), areas, strict=True)
        )
    ]


# --------------------------------------------------------------------------------------------
# engines


def _quiet(*_args: Any, **_kwargs: Any) -> None:
    """faster_coco_eval's ``print_function``: it reports progress through it, which we drop."""


def _run_faster(gt: _Prepared, dets: list[dict[str, Any]]) -> list[float]:
    from faster_coco_eval import COCO, COCOeval_faster

    gt_dataset = {"images": gt.images, "annotations": gt.annotations, "categories": gt.categories}
    coco_gt = COCO(gt_dataset, print_function=_quiet)
    coco_dt = COCO({"images": gt.images, "annotations": dets, "categories": gt.categories}, print_function=_quiet)
    ev = COCOeval_faster(coco_gt, coco_dt, iouType="bbox", print_function=_quiet)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return [float(v) for v in ev.stats[: len(STAT_NAMES)]]


def _run_pycocotools(gt: _Prepared, dets: list[dict[str, Any]]) -> list[float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    # Built by hand instead of COCO(path)/loadRes: COCO() only reads files, and loadRes
    # fails on an empty result list (it indexes anns[0]).
    coco_gt, coco_dt = COCO(), COCO()
    coco_gt.dataset = {"images": gt.images, "annotations": gt.annotations, "categories": gt.categories}
    coco_dt.dataset = {"images": gt.images, "annotations": dets, "categories": gt.categories}
    coco_gt.createIndex()
    coco_dt.createIndex()
    ev = COCOeval(coco_gt, coco_dt, iouType="bbox")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return [float(v) for v in ev.stats[: len(STAT_NAMES)]]


_RUNNERS = {"faster": _run_faster, "pycocotools": _run_pycocotools}


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while an evaluation builds its inputs and runs.

    Copying the inputs and the engines' own indexing allocate hundreds of thousands of small
    dicts and lists (acyclic), which keeps triggering collections that walk the growing heap:
    at COCO val scale (5,000 images, 85k detections) that was about half of our copying time
    and 15-20 % of faster_coco_eval's. Reference counting still frees everything. The switch is
    process-wide (other threads also go without cyclic collection meanwhile); the previous
    state is restored on exit.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _evaluate(gt: Any, detections: Any, engine: str, gt_source: str, dt_source: str) -> CocoStats:
    if engine not in _RUNNERS:
        raise ConfigError(f"unknown COCO engine {engine!r}; expected one of {', '.join(ENGINES)}")
    # Both engines print progress and the 12-line summary to stdout; keep it out of our logs
    # (debug level only). redirect_stdout swaps sys.stdout process-wide, so don't run two
    # evaluations on threads of one process and expect their prints to stay separate.
    buffer = io.StringIO()
    with _gc_paused():
        prepared = _prepare_gt(gt, gt_source)
        dets = _prepare_detections(detections, dt_source, prepared, gt_source)
        with contextlib.redirect_stdout(buffer):
            values = _RUNNERS[engine](prepared, dets)
    if buffer.getvalue():
        log.debug("%s engine output:\n%s", engine, buffer.getvalue().rstrip())
    return CocoStats.from_sequence(values)


def coco_bbox_stats(gt: dict, detections: list[dict], engine: Engine = "faster") -> CocoStats:
    """The 12 COCO bbox numbers of ``detections`` against the COCO instances dict ``gt``.

    ``detections`` are COCO result dicts (image_id, category_id, bbox [x, y, w, h], score).
    Neither argument is modified. Raises InputError for a detection whose image or category
    the ground truth lacks (pycocotools would only ``assert``), and ConfigError for an
    unknown ``engine``. No detections at all gives AP = AR = 0, not an error.
    """
    return _evaluate(gt, detections, engine, "the ground truth", "detections")


def _load_json(path: Path, expected: type, what: str) -> Any:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(f"{path}: cannot read {what}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    if not isinstance(data, expected):
        want = "object" if expected is dict else "array"
        raise InputError(f"{path}: {what} must be a JSON {want} at the top level, got {type(data).__name__}")
    return data


def score_files(gt_path: Path, dt_path: Path, engine: Engine = "faster") -> CocoStats:
    """``coco_bbox_stats`` of a COCO instances JSON and a COCO results JSON (a list).

    Errors name the file and entry, e.g. ``results.json: [3] missing field 'score'``.
    """
    gt = _load_json(gt_path, dict, "COCO ground truth")
    dets = _load_json(dt_path, list, "COCO results")
    return _evaluate(gt, dets, engine, str(gt_path), str(dt_path))


# --------------------------------------------------------------------------------------------
# from our Parquet tables

_IMAGE_COLUMNS = ("image_id", "domain", "width", "height", "file_name")
_ANN_COLUMNS = ("ann_id", "image_id", "domain", "category_id", "bbox", "area", "iscrowd")
_CAT_COLUMNS = ("category_id", "name", "supercategory")


def _require(table: pa.Table, columns: Sequence[str], name: str) -> None:
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise InputError(f"{name} table: missing columns {missing}")


def gt_from_tables(images: pa.Table, annotations: pa.Table, categories: pa.Table, domain: str | None = None) -> dict:
    """A COCO instances dict from the ``coco_images`` / ``coco_annotations`` / ``coco_categories`` tables.

    Image ids are unique only within a domain (COCO-O's six domains reuse ids), so ``domain``
    selects one; with ``domain=None`` every row is used, which is an error when ids repeat.
    """
    _require(images, _IMAGE_COLUMNS, "coco_images")
    _require(annotations, _ANN_COLUMNS, "coco_annotations")
    _require(categories, _CAT_COLUMNS, "coco_categories")
    if domain is not None:
        images = images.filter(pc.equal(images["domain"], domain))
        annotations = annotations.filter(pc.equal(annotations["domain"], domain))
        if images.num_rows == 0:
            raise ConfigError(f"domain {domain!r} has no images in the coco_images table")
    img_ids = images["image_id"].to_pylist()
    if len(set(img_ids)) != len(img_ids):
        domains = sorted(set(images["domain"].to_pylist()))
        hint = f"; pass domain= one of {domains}" if len(domains) > 1 else ""
        raise InputError(f"coco_images table: image ids repeat{hint}")
    img_rows = zip(
        img_ids, images["width"].to_pylist(), images["height"].to_pylist(), images["file_name"].to_pylist(), strict=True
    )
    ann_cols = [annotations[c].to_pylist() for c in ("ann_id", "image_id", "category_id", "bbox", "area", "iscrowd")]
    cat_cols = [categories[c].to_pylist() for c in _CAT_COLUMNS]
    return {
        "images": [{"id": i, "width": w, "height": h, "file_name": f} for i, w, h, f in img_rows],
        "annotations": [
            {"id": a, "image_id": i, "category_id": c, "bbox": b, "area": ar, "iscrowd": int(bool(z))}
            for a, i, c, b, ar, z in zip(*ann_cols, strict=True)
        ],
        "categories": [
            {"id": c, "name": n, "supercategory": s if s is not None else ""} for c, n, s in zip(*cat_cols, strict=True)
        ],
    }


# --------------------------------------------------------------------------------------------
# robustness summaries

COCO_O_SLOPE = 0.45
"""COCO-O's reported trend: OOD mAP ≈ 0.45 × ID mAP across detectors (intercept 0)."""


def effective_robustness(id_map: float, ood_map: float, a: float = 0.0, b: float = COCO_O_SLOPE) -> float:
    """OOD mAP above the ID→OOD trend line ``ood = a + b·id``: ``ood − (a + b·id)``.

    The default line (a = 0, b = 0.45) is the trend COCO-O reports across detectors; a model
    on the line has effective robustness 0, whatever its ID mAP. ``id_map`` and ``ood_map``
    must use the same scale (fractions or percentages; ``a`` on that scale too).
    """
    return float(ood_map) - (float(a) + float(b) * float(id_map))


def fit_trend(id_maps: Sequence[float], ood_maps: Sequence[float]) -> tuple[float, float]:
    """Least-squares line ``ood = a + b·id`` through a set of models: returns ``(a, b)``.

    Feed the result to ``effective_robustness`` to measure against one's own model zoo
    instead of COCO-O's published slope. Needs at least two distinct ID values.
    """
    x = np.asarray(id_maps, dtype=np.float64)
    y = np.asarray(ood_maps, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise ConfigError(f"fit_trend: id_maps and ood_maps must be equal-length lists, got {len(x)} and {len(y)}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ConfigError("fit_trend: mAP values must be finite numbers")
    if len(np.unique(x)) < 2:
        raise ConfigError("fit_trend: needs at least two models with different ID mAP to fit a line")
    dx = x - x.mean()
    b = float((dx * (y - y.mean())).sum() / (dx * dx).sum())
    a = float(y.mean() - b * x.mean())
    return a, b


def relative_drop(id_map: float, ood_map: float) -> float:
    """Share of ID mAP lost out of distribution: ``(id − ood) / id`` (nan when id is 0)."""
    if id_map == 0:
        return float("nan")
    return (float(id_map) - float(ood_map)) / float(id_map)
