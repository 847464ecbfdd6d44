"""Attribute robustness evaluation throughput: Ray (2 workers) vs a plain loop (issue 16).

Data: the project's synthetic masked set (``data/synthetic_objects.py``: five shape
classes with exact masks on photo, gradient or flat backgrounds, ``--size``² pixels), each
object as its original and one real edit (``direction`` by 90°, made in-process by
``tasks/attributes/make.edit_rows``) — the evaluation cost does not depend on which editor
made an image. Model: ``--model`` (default MobileNetV2 with its packaged ImageNet weights,
every image resized to 224²); each shape label is mapped to one ImageNet class so every image
is evaluated (the mapping is arbitrary: this measures throughput, not accuracy).

* **loop**: ``run_predictions(parallel=False)`` — this process predicts the shards one
  after another (one torch thread, as each Ray worker uses).
* **Ray, 2 workers**: ``run_predictions(parallel=True)`` on a local Ray of 2 CPUs — one Ray
  task per (model, shard of ``--shard-size`` edits), each reading its images from the store
  and loading the model once per worker process. Worker start-up, their torch imports and
  model loads are included (what a first run pays).
* **Ray, 2 warm workers**: the same again into another fresh stage, the workers already
  up with the model loaded (what every later model × shard of a long evaluation costs).

Both arms write a fresh predictions stage; the predictions must be identical (top-5 classes
and hits per ``model|edit_id``), else the script fails.

usage: benchmarks/attribute_eval.py [--objects 60] [--size 96] [--shard-size 16]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_monitor import OtherLoad  # noqa: E402

console = Console(width=130)
LABEL_MAP = {
    "disc": ["ping-pong ball"],
    "square": ["envelope"],
    "triangle": ["9"],
    "star": ["starfish"],
    "cross": ["Band Aid"],
}
EDITORS = ("original", "direction?angles=90")


def bench_evaluation(objects: int = 60, size: int = 96, shard_size: int = 16, model: str | None = None) -> dict:
    """Time the loop and the Ray arm on the same edits; returns their figures."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    from trustflow.data.schemas import ATTRIBUTE_EDITS
    from trustflow.data.store import ArtifactStore, StageRef
    from trustflow.data.synthetic_objects import CLASSES
    from trustflow.infra.ray_runtime import ensure_ray, shutdown_ray
    from trustflow.settings import load_settings
    from trustflow.tasks.attributes.evaluate import plan_model, run_predictions
    from trustflow.tasks.attributes.make import EDIT_KEYS, edit_rows
    from trustflow.tasks.ingest.kinds.synthetic_objects import build_synthetic_rows

    spec = model or "mobilenet_v2?pretrained=true"
    count = max(len(CLASSES), objects // len(CLASSES) * len(CLASSES))
    with tempfile.TemporaryDirectory(prefix="tf-attrbench-") as tmp, OtherLoad() as load:
        settings = load_settings(store_url=f"file://{tmp}/store", home=Path(tmp) / "home", ray_num_cpus=2)
        store = ArtifactStore(settings=settings)
        edits = StageRef("attribute_robustness", "bench", "edits")
        masked = build_synthetic_rows((0, size, 0, count)).to_pylist()
        store.write_stage(edits, ATTRIBUTE_EDITS, edit_rows(masked, EDITORS, seed=0), EDIT_KEYS)
        plan = plan_model(store, spec, CLASSES, LABEL_MAP)
        arms = {}
        for name, parallel in (("loop", False), ("Ray, 2 workers", True), ("Ray, 2 warm workers", True)):
            if parallel:
                ensure_ray(settings)
            preds = StageRef("attribute_robustness", f"bench-{len(arms)}", "predictions")
            t0 = time.perf_counter()
            stats = run_predictions(store, edits, preds, [plan], shard_size=shard_size, parallel=parallel)
            seconds = time.perf_counter() - t0
            rows = store.read_table(preds, columns=["pred_key", "top5", "hit1", "hit5"]).to_pylist()
            arms[name] = {"seconds": seconds, "images": stats["rows_written"], "rows": sorted(rows, key=str)}
        shutdown_ray()
    loop, ray, warm = arms["loop"], arms["Ray, 2 workers"], arms["Ray, 2 warm workers"]
    if not loop["rows"] == ray["rows"] == warm["rows"]:
        raise SystemExit("the Ray arm's predictions differ from the loop's")
    table = Table(title=f"{spec}: {loop['images']} edited images ({size}² → 224²), shards of {shard_size}")
    for col in ("arm", "seconds", "images/s", "× loop"):
        table.add_column(col, justify="right" if col != "arm" else "left")
    base = loop["images"] / loop["seconds"]
    for name, arm in arms.items():
        rate = arm["images"] / arm["seconds"]
        table.add_row(name, f"{arm['seconds']:.1f}", f"{rate:.1f}", f"{rate / base:.2f}")
    console.print(table)
    console.print(
        f"identical predictions: yes ({len(loop['rows'])} rows); Ray 2 workers / loop = "
        f"{loop['seconds'] / ray['seconds']:.2f} × cold (worker start, imports and model load included), "
        f"{loop['seconds'] / warm['seconds']:.2f} × warm"
    )
    console.print(load.summary())
    return {"loop_s": loop["seconds"], "ray_s": ray["seconds"], "ray_warm_s": warm["seconds"], "images": loop["images"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--objects", type=int, default=60)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--shard-size", type=int, default=16)
    ap.add_argument("--model", default=None)
    args = ap.parse_args()
    bench_evaluation(args.objects, args.size, args.shard_size, args.model)


if __name__ == "__main__":
    main()
