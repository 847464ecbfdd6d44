"""Detection at scale (issue 22): how each stage of ``detector_evaluate`` grows with the images.

For each size N (default 1,000 / 10,000 / 100,000 images) one fresh child process:

1. writes a plain COCO set of N small images (``--size``, default 160×120 JPEG): a dark
   textured ground with one or two bright squares, each square a ground-truth box of
   category ``face`` — made with numpy from a seeded generator, so the set is the same on
   every run and costs ~0.3 ms per image;
2. runs the real ``detector_evaluate`` flow through Prefect (ephemeral) and a local Ray into
   a file store: shifted domain ``--domain`` (default ``weather``, the cheapest COCO-O
   style) generated next to ``original``, the COCO-O tree ingested, inference with
   ``--detector`` (default ``scripted``: models/detection/scripted.py, boxes from the pixels
   in microseconds — a load generator, never a result; ``haar`` for a real cheap detector),
   scoring of both domains and the leaderboard;
3. reports per stage (Prefect task runs; the ingest subflow's tasks summed as "ingest"):
   wall seconds and images/s; the driver's peak RSS in the stage's window and the largest Ray
   worker RSS seen (sampled every 0.25 s); the store objects written.

Then a log-log fit of seconds against N per stage: the exponent (goal ≤ 1.1) and the driver
peak RSS ratio largest/smallest N (goal ≤ 1.5).

usage: benchmarks/scale_detection.py [--sizes 1000,10000,100000] [--detector scripted]
       [--domain weather] [--size 160x120] [--batch-size 64] [--actors 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from scale_seval import RssSampler, count_objects, fit_exponent, isolate  # noqa: E402

STAGES = {  # Prefect task run name prefix → stage label, in flow order
    "prepare-detection-dataset": "shifts",
    "ingest": "ingest",
    "detect-": "inference",
    "score-detections": "scoring + leaderboard",
}


def make_images(root: Path, n: int, size: tuple[int, int], seed: int = 0) -> Path:
    """A plain COCO set of ``n`` images with bright squares as its ``face`` boxes."""
    import numpy as np
    from PIL import Image

    width, height = size
    rng = np.random.default_rng(seed)
    grounds = [rng.integers(0, 110, (height, width, 3), dtype=np.uint8) for _ in range(16)]
    (root / "val").mkdir(parents=True)
    (root / "annotations").mkdir()
    images, annotations = [], []
    for image_id in range(1, n + 1):
        canvas = grounds[image_id % 16].copy()
        for _ in range(1 + image_id % 2):
            side = int(rng.integers(12, height // 2))
            x, y = int(rng.integers(0, width - side)), int(rng.integers(0, height - side))
            canvas[y : y + side, x : x + side] = rng.integers(215, 255, dtype=np.uint8)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "bbox": [x, y, side, side],
                    "area": float(side * side),
                    "iscrowd": 0,
                }
            )
        name = f"{image_id:07d}.jpg"
        Image.fromarray(canvas).save(root / "val" / name, quality=90)
        images.append({"id": image_id, "file_name": name, "width": width, "height": height})
    doc = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "face"}]}
    (root / "annotations" / "instances_val.json").write_text(json.dumps(doc))
    return root


def stage_of(task_run_name: str) -> str | None:
    for prefix, label in STAGES.items():
        if task_run_name.startswith(prefix):
            return label
    return None


def all_task_run_windows() -> dict[str, list[tuple[float, float]]]:
    """(start, end) unix times of every task run in this (fresh) Prefect database, by stage."""
    import asyncio

    from prefect.client.orchestration import get_client

    async def read() -> Any:
        async with get_client() as client:
            return await client.read_task_runs(limit=200)

    out: dict[str, list[tuple[float, float]]] = {}
    for r in asyncio.run(read()):
        label = stage_of(r.name) or "ingest"  # the ingest subflow's tasks
        if r.start_time and r.end_time:
            out.setdefault(label, []).append((r.start_time.timestamp(), r.end_time.timestamp()))
    return out


def one_size(n: int, args: argparse.Namespace, out: Path) -> None:
    """Child process: one run at size ``n``; writes its figures as JSON to ``out``."""
    tmp = Path(tempfile.mkdtemp(prefix=f"tf-detscale-{n}-"))
    isolate(tmp)
    from trustflow.data.store import ArtifactStore
    from trustflow.settings import load_settings

    width, height = (int(v) for v in args.size.lower().split("x"))
    try:
        settings = load_settings(store_url=f"file://{tmp / 'store'}")
        os.environ["TRUSTFLOW_STORE_URL"] = settings.effective_store_url
        t0 = time.perf_counter()
        source = make_images(tmp / "source", n, (width, height))
        generate_s = time.perf_counter() - t0
        sampler = RssSampler()
        sampler.start()
        from trustflow.flows.detector_eval import detector_evaluate
        from trustflow.infra.prefect_runtime import prefect_runtime

        t0 = time.perf_counter()
        with prefect_runtime(settings):
            result = detector_evaluate(
                source=str(source),
                detectors=[args.detector],
                domains=[args.domain],
                inference={"batch_size": args.batch_size, "actors": args.actors, "part_rows": args.part_rows},
            )
            flow_s = time.perf_counter() - t0
            windows = all_task_run_windows()
        sampler.stop.set()
        stages = {label: max(e for _, e in w) - min(s for s, _ in w) for label, w in windows.items()}
        stage_rss = {
            label: sampler.driver_peak_between(min(s for s, _ in w), max(e for _, e in w)) / 2**20
            for label, w in windows.items()
        }
        store = ArtifactStore(settings.effective_store_url, settings)
        result = {
            "n": n,
            "generate_s": generate_s,
            "flow_s": flow_s,
            "stages": stages,
            "stage_driver_peak_mb": stage_rss,
            "driver_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "worker_peak_mb": sampler.worker_peak / 2**20,
            "objects": count_objects(store),
            "images_scored": sum(m["images"] for m in result["metrics"]),
            "ran": sum(r["ran"] for r in result["inference"]),
            "id_map": result["leaderboard"][0]["id_map"],
        }
        out.write_text(json.dumps(result))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--detector", default="scripted")
    ap.add_argument("--domain", default="weather")
    ap.add_argument("--size", default="160x120", help="image width x height")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--actors", type=int, default=2)
    ap.add_argument("--part-rows", type=int, default=4096, help="detection rows per Parquet part")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        one_size(args.one, args, args.out)
        return 0

    from load_monitor import OtherLoad
    from rich.console import Console
    from rich.table import Table

    console = Console(width=140)
    sizes = [int(s) for s in args.sizes.split(",")]
    results = []
    with OtherLoad() as load:
        for n in sizes:
            out = Path(tempfile.mkstemp(suffix=".json")[1])
            cmd = [sys.executable, __file__, "--one", str(n), "--out", str(out)]
            for flag in ("detector", "domain", "size", "batch_size", "actors", "part_rows"):
                cmd += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True)
            result = json.loads(out.read_text())
            out.unlink()
            result["wall_s"] = time.perf_counter() - t0
            results.append(result)
            console.print(f"N={n}: flow {result['flow_s']:.1f} s, {result['objects']} objects")
            console.print_json(json.dumps(result))

    table = Table(
        title=f"detector_evaluate at scale: {args.detector}, original + {args.domain} ({args.size}), "
        f"batch {args.batch_size}, {args.actors} actors"
    )
    for col in ("N images (× 2 domains)", "stage", "seconds", "images/s", "driver peak MB"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    per_stage: dict[str, list[float]] = {}
    for r in results:
        n = r["n"]
        images = {"shifts": n}.get  # the shift makes N images; every other stage handles 2N
        for label in [*STAGES.values()]:
            if label not in r["stages"]:
                continue
            secs = r["stages"][label]
            per_stage.setdefault(label, []).append(secs)
            rate = (images(label) or 2 * n) / max(secs, 1e-9)
            table.add_row(f"{n:,}", label, f"{secs:.1f}", f"{rate:,.0f}", f"{r['stage_driver_peak_mb'][label]:.0f}")
        per_stage.setdefault("whole flow", []).append(r["flow_s"])
        table.add_row(f"{n:,}", "whole flow", f"{r['flow_s']:.1f}", f"{2 * n / r['flow_s']:,.0f}", "")
    console.print(table)

    mem = Table(title="memory and store objects")
    for col in ("N", "generate s", "driver peak MB", "largest worker MB", "store objects", "images scored", "ID mAP"):
        mem.add_column(col, justify="right")
    for r in results:
        mem.add_row(
            f"{r['n']:,}",
            f"{r['generate_s']:.1f}",
            f"{r['driver_peak_mb']:.0f}",
            f"{r['worker_peak_mb']:.0f}",
            f"{r['objects']:,}",
            f"{r['images_scored']:,}",
            f"{r['id_map']:.3f}",
        )
    console.print(mem)

    ns = [r["n"] for r in results]
    fit = Table(title=f"log-log exponent of seconds vs N ({ns[0]:,} → {ns[-1]:,}; goal ≤ 1.1)")
    fit.add_column("stage")
    fit.add_column("exponent", justify="right")
    fit.add_column(f"exponent {ns[-2]:,} → {ns[-1]:,}" if len(ns) > 2 else "", justify="right")
    for label, secs in per_stage.items():
        if len(secs) == len(ns):
            top = f"{fit_exponent(ns[-2:], secs[-2:]):.2f}" if len(ns) > 2 else ""
            fit.add_row(label, f"{fit_exponent(ns, secs):.2f}", top)
    console.print(fit)
    ratio = results[-1]["driver_peak_mb"] / results[0]["driver_peak_mb"]
    console.print(f"driver peak RSS ratio {ns[-1]:,} / {ns[0]:,}: {ratio:.2f} (goal ≤ 1.5)")
    console.print(load.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
