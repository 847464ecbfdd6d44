"""Detector inference on Ray Data (1 and 2 actors) vs a plain loop, and leaderboard scoring
on Ray vs one evaluation after another (issue 6).

Data: the generated face set (``data/synthetic_faces.py``, ``--images`` 320×240 images) and
its 6 COCO-O style domains, ingested once into a local-directory store. Model: ``--detector``
(default MTCNN), one torch/OpenCV thread per worker in every arm.

* **plain loop**: this process decodes the images and calls ``detector.detect`` batch by
  batch (``--batch-size``), one thread — what one Ray actor does alone.
* **Ray Data, N actors**: ``run_detector`` (read_parquet → drop-done filter → map_batches with
  an actor pool of N, 0.5 CPU each so the read tasks are never starved) into a fresh
  detections stage; the time is the whole call minus nothing (actor start-up and model load
  included: the total is what a user waits for).
* **scoring**: the 12 COCO numbers for every (detector, domain) pair of the run — with
  ``score_all(parallel=True)`` (one Ray task per pair) and ``parallel=False``.

Goal: Ray Data with 2 actors ≥ 1.6 × the plain loop (images/s).

usage: benchmarks/detector_inference.py [--images 48] [--detector mtcnn] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_monitor import OtherLoad  # noqa: E402

console = Console(width=130)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=48)
    ap.add_argument("--detector", default="mtcnn")
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args()

    import torch

    from trustflow import names
    from trustflow.data.schemas import DETECTIONS
    from trustflow.data.store import ArtifactStore, StageRef
    from trustflow.data.synthetic_faces import make_face_coco
    from trustflow.infra.ray_runtime import ensure_ray, shutdown_ray
    from trustflow.models.detection import load_detector
    from trustflow.settings import load_settings
    from trustflow.tasks.detection.inference import DETECTION_KEYS, InferenceConfig, decode_rgb, run_detector
    from trustflow.tasks.detection.metrics import gt_from_tables
    from trustflow.tasks.detection.scoring import score_all
    from trustflow.tasks.detection.shifts.apply import make_shifted_set

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="tf-detbench-") as tmp, OtherLoad() as load:
        root = Path(tmp)
        settings = load_settings(store_url=f"file://{root / 'store'}", home=root / "home", ray_num_cpus=2)
        faces = make_face_coco(root / "faces", n_images=args.images, seed=0)
        tree = make_shifted_set(
            faces, root / "tree", ["sketch", "cartoon", "painting", "weather", "handmake", "tattoo"], seed=0
        )
        ensure_ray(settings)
        store = ArtifactStore(settings=settings)
        from trustflow.tasks.ingest import INGESTERS

        INGESTERS.create("coco")(store, "bench", tree)
        images_ref = StageRef(names.INGEST, "bench", names.IMAGES)
        keys = store.read_table(images_ref, columns=["domain", "split", "image_id"])
        cats = store.read_table(StageRef(names.INGEST, "bench", names.CATEGORIES))
        categories = dict(zip(cats["category_id"].to_pylist(), cats["name"].to_pylist(), strict=True))
        n = keys.num_rows

        # plain loop
        blobs = store.read_table(images_ref, columns=["image_bytes"])["image_bytes"].to_pylist()
        t0 = time.perf_counter()
        detector = load_detector(args.detector, categories)
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for i in range(0, n, args.batch_size):
            detector.detect([decode_rgb(b) for b in blobs[i : i + args.batch_size]])
        plain_s = time.perf_counter() - t0
        rows = [("plain loop, 1 thread", plain_s, n / plain_s, load_s)]
        console.print(f"plain loop: {n} images in {plain_s:.1f} s (+{load_s:.1f} s model load)")

        detections = None
        for actors in (1, 2):
            out = StageRef(names.DETECTOR_EVALUATE, f"bench-{actors}", names.DETECTIONS)
            cfg = InferenceConfig(batch_size=args.batch_size, actors=actors, part_rows=10_000)
            t0 = time.perf_counter()
            stats = run_detector(store, images_ref, out, args.detector, categories, None, cfg, keys)
            total = time.perf_counter() - t0
            assert stats.images_run == n, stats
            rows.append((f"Ray Data, {actors} actor(s)", total, n / total, 0.0))
            console.print(f"Ray Data {actors} actor(s): {n} images in {total:.1f} s")
            detections = store.writer(out, DETECTIONS, DETECTION_KEYS)
        assert detections is not None
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.concat_tables([pq.read_table(f.path, filesystem=store.fs) for f in detections.part_files()])
        images = store.read_table(images_ref, columns=["image_id", "domain", "split", "file_name", "width", "height"])
        annotations = store.read_table(StageRef(names.INGEST, "bench", names.ANNOTATIONS))
        cat_table = store.read_table(StageRef(names.INGEST, "bench", names.CATEGORIES))
        gt = {d: gt_from_tables(images, annotations, cat_table, d) for d in sorted(set(images["domain"].to_pylist()))}
        # two "detectors" (the same detections under two names) so the leaderboard has 14 evaluations
        twin = table.set_column(0, table.schema.field("detector"), pa.array([f"{args.detector}-copy"] * table.num_rows))
        both = pa.concat_tables([table, twin])
        names = [args.detector, f"{args.detector}-copy"]
        t0 = time.perf_counter()
        serial = score_all(gt, both, names, parallel=False)
        serial_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        parallel = score_all(gt, both, names, parallel=True)
        parallel_s = time.perf_counter() - t0
        same = all(abs(a["AP"] - b["AP"]) < 1e-12 for a, b in zip(serial, parallel, strict=True))
        shutdown_ray()

    table_out = Table(
        title=f"{args.detector} on {n} images ({args.images} faces × 7 domains), batch {args.batch_size}, 1 thread per worker"
    )
    for col in ("arm", "seconds", "images/s", "× plain loop", "model load s"):
        table_out.add_column(col, justify="left" if col == "arm" else "right")
    base = rows[0][2]
    for label, secs, rate, load_s in rows:
        table_out.add_row(label, f"{secs:.1f}", f"{rate:.1f}", f"{rate / base:.2f}", f"{load_s:.1f}" if load_s else "-")
    console.print(table_out)
    console.print(f"goal: Ray Data 2 actors ≥ 1.6 × plain loop — measured {rows[2][2] / base:.2f} ×")
    console.print(
        f"scoring {len(serial)} (detector, domain) evaluations: one after another {serial_s:.2f} s, "
        f"Ray tasks {parallel_s:.2f} s ({serial_s / parallel_s:.2f} ×), identical numbers: {same}"
    )
    console.print(load.summary())


if __name__ == "__main__":
    main()
