#!/usr/bin/env python
"""COCO bbox mAP: trustflow's ``coco_bbox_stats`` vs ``faster_coco_eval`` and ``pycocotools`` called directly.

The ground truth and detections are synthesised (``--seed``) at COCO val2017 scale by default:
``--images`` 5,000 images of 240-640 px per side, ``--categories`` 80 categories drawn with a
Zipf-like skew, 1-15 objects per image (about 7.3 on average, as in COCO), sides log-uniform
from 4 to 400 px so that all three area buckets are populated, and 1 % crowd regions.
Detections: 85 % of the objects are found with a jittered box, 10 % of those twice (a
duplicate), 5 % under a wrong category; each image also gets 0-19 random false positives. The
scores are higher for hits than for false positives, so AP lands in a realistic range.

Arms, on identical inputs:

* **trustflow**: ``trustflow.tasks.detection.metrics.coco_bbox_stats(gt, dets)`` — validation,
  copies, the stdout capture and ``faster_coco_eval``;
* **faster_coco_eval direct**: ``COCO(gt)``, ``loadRes(dets)``, ``COCOeval_faster(...,
  "bbox")``, evaluate/accumulate/summarize;
* **pycocotools direct**: the same sequence with pycocotools (``COCO()`` with the dict set as
  its dataset, since its constructor only reads files).

Both direct arms mutate their inputs (``loadRes`` adds ``id``/``area``/``segmentation``), so
each gets a fresh deep copy made outside the timed region; their stdout is captured as ours is.
An untimed warm-up round comes first; then ``--repeat`` rounds alternate the order of the
trustflow and faster arms and the table shows medians. pycocotools is slow (tens of seconds
at full size), so it runs ``--pyco-repeat`` times (default 1).

**Goal:** trustflow / faster_coco_eval time <= 1.10, and all 12 numbers identical (1e-4)
across the three arms.

    .venv/bin/python benchmarks/coco_map_eval.py [--images 5000] [--categories 80] [--repeat 3]
        [--pyco-repeat 1] [--seed 0]

A benchmark, not a test: it always exits 0 unless something breaks.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from load_monitor import OtherLoad  # sibling module (scripts run from benchmarks/)
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

GOAL_RATIO = 1.10
TOLERANCE = 1e-4


def synthesise(n_images: int, n_categories: int, seed: int) -> tuple[dict, list[dict]]:
    """A COCO-like instances dict and a detector's results for it (see module docstring)."""
    rng = np.random.default_rng(seed)
    cat_ids = np.arange(1, n_categories + 1)
    cat_p = 1.0 / np.arange(1, n_categories + 1) ** 0.8
    cat_p /= cat_p.sum()
    images, anns, dets = [], [], []

    def random_box(w: int, h: int) -> list[float]:
        side = float(np.exp(rng.uniform(np.log(4), np.log(400))))
        aspect = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
        bw, bh = min(side * aspect**0.5, w - 1), min(side / aspect**0.5, h - 1)
        x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
        return [round(x, 2), round(y, 2), round(bw, 2), round(bh, 2)]

    for image_id in range(1, n_images + 1):
        w, h = int(rng.integers(240, 641)), int(rng.integers(240, 641))
        images.append({"id": image_id, "width": w, "height": h, "file_name": f"{image_id:012d}.jpg"})
        for _ in range(int(rng.integers(1, 16))):
            box = random_box(w, h)
            cat = int(rng.choice(cat_ids, p=cat_p))
            area = round(box[2] * box[3] * rng.uniform(0.6, 0.9), 2)  # a mask covers part of its box
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": image_id,
                    "category_id": cat,
                    "bbox": box,
                    "area": area,
                    "iscrowd": int(rng.random() < 0.01),
                }
            )
            if rng.random() >= 0.85:
                continue
            for _copy in range(2 if rng.random() < 0.10 else 1):
                jitter = rng.normal(0, 0.08, 4) * [box[2], box[3], box[2], box[3]]
                det_box = [
                    box[0] + jitter[0],
                    box[1] + jitter[1],
                    max(box[2] + jitter[2], 1.0),
                    max(box[3] + jitter[3], 1.0),
                ]
                det_cat = cat if rng.random() >= 0.05 else int(rng.choice(cat_ids))
                dets.append(
                    {
                        "image_id": image_id,
                        "category_id": det_cat,
                        "bbox": [round(v, 2) for v in det_box],
                        "score": round(float(rng.beta(5, 2)), 4),
                    }
                )
        for _ in range(int(rng.integers(0, 20))):
            dets.append(
                {
                    "image_id": image_id,
                    "category_id": int(rng.choice(cat_ids, p=cat_p)),
                    "bbox": random_box(w, h),
                    "score": round(float(rng.beta(2, 5)), 4),
                }
            )
    categories = [{"id": int(c), "name": f"class_{c}", "supercategory": "thing"} for c in cat_ids]
    return {"images": images, "annotations": anns, "categories": categories}, dets


def run_faster_direct(gt: dict, dets: list[dict]) -> list[float]:
    from faster_coco_eval import COCO, COCOeval_faster

    def quiet(*_a: Any, **_k: Any) -> None:
        pass

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(gt, print_function=quiet)
        coco_dt = coco_gt.loadRes(dets)
        ev = COCOeval_faster(coco_gt, coco_dt, iouType="bbox", print_function=quiet)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [float(v) for v in ev.stats[:12]]


def run_pycocotools_direct(gt: dict, dets: list[dict]) -> list[float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(dets)
        ev = COCOeval(coco_gt, coco_dt, iouType="bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [float(v) for v in ev.stats[:12]]


def timed(fn: Callable[[], list[float]]) -> tuple[float, float, list[float]]:
    t0, c0 = time.perf_counter(), time.process_time()
    stats = fn()
    return time.perf_counter() - t0, time.process_time() - c0, stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--categories", type=int, default=80)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--pyco-repeat", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    console = Console(width=None if sys.stdout.isatty() else 110)  # piped output: no wrapped table

    from importlib.metadata import version

    import faster_coco_eval
    import pycocotools  # noqa: F401  (fail early if missing)

    from trustflow.tasks.detection.metrics import STAT_NAMES, coco_bbox_stats

    t0 = time.perf_counter()
    gt, dets = synthesise(args.images, args.categories, args.seed)
    console.print(
        f"synthesised {len(gt['images']):,} images, {len(gt['annotations']):,} objects "
        f"({sum(a['iscrowd'] for a in gt['annotations'])} crowd), {len(gt['categories'])} categories, "
        f"{len(dets):,} detections in {time.perf_counter() - t0:.1f} s (seed {args.seed}); "
        f"faster_coco_eval {faster_coco_eval.__version__}, pycocotools {version('pycocotools')}, "
        f"{os.cpu_count()} CPUs"
    )

    def ours(g: dict, d: list[dict]) -> list[float]:
        return list(coco_bbox_stats(g, d).as_tuple())

    arms: dict[str, Callable[[dict, list[dict]], list[float]]] = {
        "trustflow": ours,
        "faster_coco_eval": run_faster_direct,
        "pycocotools": run_pycocotools_direct,
    }
    wall: dict[str, list[float]] = {k: [] for k in arms}
    cpu: dict[str, list[float]] = {k: [] for k in arms}
    stats: dict[str, list[float]] = {}

    def measure(name: str, record: bool = True) -> None:
        # untimed copies: the direct arms mutate what they are given; ours leaves it as it is
        g, d = (gt, dets) if name == "trustflow" else (copy.deepcopy(gt), copy.deepcopy(dets))
        w, c, s = timed(lambda: arms[name](g, d))
        if record:
            wall[name].append(w)
            cpu[name].append(c)
            stats.setdefault(name, s)

    fast_pair = ["trustflow", "faster_coco_eval"]
    with OtherLoad() as load:
        for name in fast_pair:  # untimed warm-up (imports, first-touch allocations)
            measure(name, record=False)
        for r in range(args.repeat):
            for name in fast_pair if r % 2 == 0 else fast_pair[::-1]:
                measure(name)
        for _ in range(args.pyco_repeat):
            measure("pycocotools")

    reference = stats["faster_coco_eval"]
    table = Table(
        title=f"COCO bbox eval, {args.images:,} images × {args.categories} categories "
        f"(median of {args.repeat}; pycocotools {args.pyco_repeat})"
    )
    for col in ("implementation", "median s", "best s", "median CPU s", "AP", "AP50", "AR100", "max |Δ| vs faster"):
        table.add_column(col, justify="left" if col == "implementation" else "right")
    for name in arms:
        s = stats[name]
        delta = max(abs(a - b) for a, b in zip(s, reference, strict=True))
        table.add_row(
            name,
            f"{statistics.median(wall[name]):.3f}",
            f"{min(wall[name]):.3f}",
            f"{statistics.median(cpu[name]):.3f}",
            f"{s[0]:.4f}",
            f"{s[1]:.4f}",
            f"{s[8]:.4f}",
            f"{delta:.1e}",
        )
    console.print(table)

    med = {k: statistics.median(v) for k, v in wall.items()}
    ratio = med["trustflow"] / med["faster_coco_eval"]
    best_ratio = min(wall["trustflow"]) / min(wall["faster_coco_eval"])
    pyco_ratio = med["pycocotools"] / med["faster_coco_eval"]
    verdict = "meets goal" if ratio <= GOAL_RATIO else "above goal"
    console.print(
        f"ratio trustflow / faster_coco_eval (median s): {ratio:.3f}  best-vs-best: {best_ratio:.3f}  "
        f"(goal <= {GOAL_RATIO:.2f}) -> {verdict}"
    )
    cpu_med = {k: statistics.median(v) for k, v in cpu.items()}
    console.print(
        f"per CPU-second (less disturbed by other load): trustflow / faster_coco_eval "
        f"{cpu_med['trustflow'] / cpu_med['faster_coco_eval']:.3f}, pycocotools / faster_coco_eval "
        f"{cpu_med['pycocotools'] / cpu_med['faster_coco_eval']:.1f}"
    )
    console.print(f"ratio pycocotools / faster_coco_eval (median s): {pyco_ratio:.1f}")
    identical = all(max(abs(a - b) for a, b in zip(stats[n], reference, strict=True)) <= TOLERANCE for n in arms)
    console.print(f"all 12 numbers identical across the three arms (to {TOLERANCE:g}): {'yes' if identical else 'NO'}")
    if not identical:
        for n in arms:
            console.print(f"  {n}: " + ", ".join(f"{k}={v:.4f}" for k, v in zip(STAT_NAMES, stats[n], strict=True)))
    console.print(load.summary())


if __name__ == "__main__":
    main()
