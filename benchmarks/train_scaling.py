"""Ray Train with 2 DDP workers vs a plain single-process loop: training samples/s (issue 5).

Both arms train the same model (``small_cnn`` from the classifier registry, a normalising
first layer) with the same method (default FGSM-LAW, the project's recommended method) on
the same data: ``--images`` random 32×32×3 images in [0, 1] with random labels, written once
as an ``npz:`` dataset so that the Ray Train workers load exactly what the plain loop uses.

* **plain loop, 1 thread / 2 threads**: ``train_one_epoch`` in this process, batch
  ``--batch-size``, ``torch.set_num_threads(1 or 2)``. The 1-thread loop is what one Ray
  worker does alone; the 2-thread loop is the fair single-process baseline on a 2-core
  machine (torch's intra-op threads already use both cores).
* **Ray Train, N workers**: ``run_training`` (``TorchTrainer``, gloo DDP, one CPU and one
  torch thread per worker, each worker a 1/N shard with the same per-worker batch) into a
  local-directory store; checkpoints are reported every epoch as in production.

Each arm runs ``--epochs`` epochs; the first is a warm-up (JIT, allocator, gloo rendezvous)
and the figure is the median of the others. Ray Train's per-epoch time is rank 0's, which
includes the per-epoch FGSM/PGD probe and checkpoint that production runs do (so the
comparison is conservative for Ray); samples/s = images per epoch ÷ that time. Ray's start-up
(``ray.init`` and worker creation, ~10–20 s, paid once per run) is reported separately.

Goal: Ray Train 2 workers ≥ 1.6 × the plain loop.

usage: benchmarks/train_scaling.py [--images 4096] [--batch-size 128] [--epochs 3] [--method fgsm_law] [--workers 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from trustflow.data.vision.datasets import load_dataset
from trustflow.models.vision.spec import load_classifier
from trustflow.tasks.robustness.training import make_method, train_one_epoch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_monitor import OtherLoad  # noqa: E402

console = Console(width=130)


def write_dataset(path: Path, images: int) -> str:
    rng = np.random.default_rng(0)
    n_test = 256
    x = rng.random((images + n_test, 3, 32, 32), dtype=np.float32)
    y = rng.integers(0, 10, images + n_test).astype(np.int64)
    np.savez(path, x=x[:images], y=y[:images], x_test=x[images:], y_test=y[images:])
    return f"npz:{path}"


def plain_loop(dataset: str, method: str, batch_size: int, epochs: int, threads: int) -> list[float]:
    """Epoch seconds of ``train_one_epoch`` in this process on the train split."""
    torch.set_num_threads(threads)
    train = load_dataset(dataset, split="train")
    torch.manual_seed(0)
    model = load_classifier("small_cnn", num_classes=train.num_classes, in_channels=3, mean=train.mean, std=train.std)
    trainer = make_method(method)
    state = trainer.init_state(model, seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x, y = torch.as_tensor(train.x), torch.as_tensor(train.y)
    loader = [(x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, len(y), batch_size)]
    seconds = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        train_one_epoch(model, trainer, loader, opt, None, state, "cpu")
        seconds.append(time.perf_counter() - t0)
    return seconds


def ray_train(
    dataset: str, method: str, batch_size: int, epochs: int, workers: int, root: Path
) -> tuple[list[float], float, int]:
    """(rank-0 epoch seconds, start-up seconds, train images) of a Ray Train run."""
    from trustflow.data.store import ArtifactStore
    from trustflow.infra.ray_runtime import ensure_ray, shutdown_ray
    from trustflow.settings import load_settings
    from trustflow.tasks.robustness.distributed import TrainJob, run_training

    store = ArtifactStore(f"file://{root}/store-{workers}", load_settings())
    job = TrainJob(
        method=method, arch="small_cnn", dataset=dataset, epochs=epochs, workers=workers, batch_size=batch_size, lr=0.01
    )
    t0 = time.perf_counter()
    ensure_ray(load_settings(ray_num_cpus=2))
    result = run_training(store, f"scaling-{workers}", job)
    wall = time.perf_counter() - t0
    shutdown_ray()
    seconds = [float(r["seconds"]) for r in result["history"]]
    samples = int(result["history"][0]["samples"]) * workers  # rank 0 reports its shard
    return seconds, wall - sum(seconds), samples


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=4096)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--method", default="fgsm_law")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="tf-scaling-") as tmp, OtherLoad() as load:
        root = Path(tmp)
        dataset = write_dataset(root / "random.npz", args.images)
        n_train = len(load_dataset(dataset, split="train").y)
        rows = []
        for threads in (1, 2):
            secs = plain_loop(dataset, args.method, args.batch_size, args.epochs, threads)
            rows.append((f"plain loop, {threads} thread(s)", secs, n_train, 0.0))
            console.print(f"plain loop {threads} thread(s): epochs {', '.join(f'{s:.2f}' for s in secs)} s")
        for workers in sorted({1, args.workers}):
            secs, startup, samples = ray_train(dataset, args.method, args.batch_size, args.epochs, workers, root)
            rows.append((f"Ray Train, {workers} worker(s)", secs, samples, startup))
            console.print(
                f"Ray Train {workers} worker(s): epochs {', '.join(f'{s:.2f}' for s in secs)} s, start-up {startup:.1f} s"
            )

    def rate(secs: list[float], samples: int) -> float:
        steady = secs[1:] or secs
        return samples / statistics.median(steady)

    table = Table(
        title=f"{args.method}, small_cnn, {n_train} images 32×32×3, batch {args.batch_size} per worker, "
        f"median of epochs 2..{args.epochs}"
    )
    for col in ("arm", "epoch s", "samples/s", "× plain 1 thread", "× plain 2 threads", "start-up s"):
        table.add_column(col, justify="right" if col != "arm" else "left")
    base1 = rate(rows[0][1], rows[0][2])
    base2 = rate(rows[1][1], rows[1][2])
    for label, secs, samples, startup in rows:
        r = rate(secs, samples)
        table.add_row(
            label,
            f"{statistics.median(secs[1:] or secs):.2f}",
            f"{r:.0f}",
            f"{r / base1:.2f}",
            f"{r / base2:.2f}",
            f"{startup:.1f}" if startup else "-",
        )
    console.print(table)
    ray_n = rate(rows[-1][1], rows[-1][2])
    console.print(
        f"goal: Ray Train {args.workers} workers ≥ 1.6 × plain loop — measured {ray_n / base1:.2f} × (1 thread), "
        f"{ray_n / base2:.2f} × (2 threads)"
    )
    console.print(load.summary())


if __name__ == "__main__":
    main()
