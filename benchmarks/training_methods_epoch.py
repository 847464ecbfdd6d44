"""Epoch time of the adversarial training methods (issue 5) on the same model and data.

Standard, FGSM-RS, FGSM-LAW, PGD-AT (PGD-10) and TRADES (10 KL steps) each train a small
CNN (a normalising first layer, conv 3→16 + BN, conv 16→32 + BN, two 2×2 max-poolings,
linear 32·8·8→64, linear 64→10; about 1.9 M multiply-adds per image) on the same random
32×32×3 images in [0, 1], batch 128, SGD, through ``train_one_epoch``, with
``torch.set_num_threads(--threads)``. Every method first runs an untimed warm-up of 2
batches; then ``--rounds`` rounds time one full epoch of every method, each epoch from a
fresh copy of the same initial model (on random labels a model trained for several epochs
drifts to a constant output, and in a trial run its epochs then got faster), the order of
the methods rotating between rounds; each figure is the median over rounds. Next to wall time,
the table shows the CPU time of this process over the epoch
(all its threads): on a shared machine, time slices lost to other processes inflate wall
time more than CPU time. The steadiest figure under bursty load is the last one: every
batch is timed (from handing it out to asking for the next), and "p25 × batches" is the
25th percentile of a method's batch times over all rounds times the batches per epoch,
an estimate of the epoch on a quiet machine.

Goal: FGSM-LAW epoch time / PGD-10 epoch time <= 0.30.

usage: benchmarks/training_methods_epoch.py [--images 2048] [--batch-size 128] [--threads 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
from rich.console import Console
from rich.table import Table

from trustflow.tasks.robustness.training import make_method, train_one_epoch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_monitor import OtherLoad  # noqa: E402

console = Console(width=130)

ARMS = [
    ("standard", "standard", {}),
    ("FGSM-RS", "fgsm_rs", {}),
    ("FGSM-LAW", "fgsm_law", {}),
    ("PGD-10 (PGD-AT)", "pgd_at", {"steps": 10}),
    ("TRADES-10", "trades", {"steps": 10}),
]


class Normalize(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.2471, 0.2435, 0.2616]).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def small_cnn() -> nn.Sequential:
    return nn.Sequential(
        Normalize(),
        nn.Conv2d(3, 16, 3, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1, bias=False),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 8 * 8, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )


class TimedLoader:
    """Iterates the batches and records the time each one took (until the next is asked for)."""

    def __init__(self, batches: list) -> None:
        self.batches = batches
        self.durations: list[float] = []

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        for b in self.batches:
            t0 = time.perf_counter()
            yield b
            self.durations.append(time.perf_counter() - t0)


def percentile(values: list[float], q: float) -> float:
    v = sorted(values)
    k = (len(v) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=2048)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    g = torch.Generator().manual_seed(0)
    x = torch.rand((args.images, 3, 32, 32), generator=g)
    y = torch.randint(0, 10, (args.images,), generator=g)
    loader = [(x[i : i + args.batch_size], y[i : i + args.batch_size]) for i in range(0, args.images, args.batch_size)]
    torch.manual_seed(0)
    init = small_cnn()

    def fresh(name: str, options: dict):
        model = copy.deepcopy(init)
        method = make_method(name, **options)
        state = method.init_state(model, seed=0)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        return model, method, state, opt

    arms = {label: (name, options) for label, name, options in ARMS}
    for name, options in arms.values():  # warm-up, untimed
        model, method, state, opt = fresh(name, options)
        train_one_epoch(model, method, loader, opt, None, state, "cpu", max_steps=2)

    times: dict[str, list[float]] = {label: [] for label, _, _ in ARMS}
    cpu: dict[str, list[float]] = {label: [] for label, _, _ in ARMS}
    batch_s: dict[str, list[float]] = {label: [] for label, _, _ in ARMS}
    labels = [label for label, _, _ in ARMS]
    with OtherLoad() as load:
        for r in range(args.rounds):
            order = labels[r % len(labels) :] + labels[: r % len(labels)]
            for label in order:
                model, method, state, opt = fresh(*arms[label])
                c0 = time.process_time()
                timed = TimedLoader(loader)
                res = train_one_epoch(model, method, timed, opt, None, state, "cpu")
                batch_s[label].extend(timed.durations)
                cpu[label].append(time.process_time() - c0)
                times[label].append(res["seconds"])
                console.print(
                    f"round {r + 1}: {label:<18} {res['seconds']:7.2f} s wall {cpu[label][-1]:7.2f} CPU-s  "
                    f"loss {res['loss']:.3f}"
                )

    med = {label: statistics.median(ts) for label, ts in times.items()}
    med_cpu = {label: statistics.median(ts) for label, ts in cpu.items()}
    quiet = {label: percentile(ts, 0.25) * len(loader) for label, ts in batch_s.items()}
    table = Table(
        title=f"One epoch: {args.images} images 32×32×3, batch {args.batch_size}, {args.threads} threads, "
        f"median of {args.rounds}"
    )
    for col in (
        "method",
        "epoch s",
        "min s",
        "images/s",
        "× standard",
        "CPU-s",
        "CPU × standard",
        "p25 × batches s",
        "p25 × standard",
    ):
        table.add_column(col, justify="left" if col == "method" else "right")
    for label in labels:
        table.add_row(
            label,
            f"{med[label]:.2f}",
            f"{min(times[label]):.2f}",
            f"{args.images / med[label]:,.0f}",
            f"{med[label] / med['standard']:.2f}",
            f"{med_cpu[label]:.2f}",
            f"{med_cpu[label] / med_cpu['standard']:.2f}",
            f"{quiet[label]:.2f}",
            f"{quiet[label] / quiet['standard']:.2f}",
        )
    console.print(table)
    pgd = "PGD-10 (PGD-AT)"
    for what, m in (("wall", med), ("CPU", med_cpu), ("p25 batch", quiet)):
        ratio = m["FGSM-LAW"] / m[pgd]
        verdict = "meets goal" if ratio <= 0.30 else "above goal"
        console.print(
            f"FGSM-LAW / PGD-10 epoch {what} time: {ratio:.3f} (goal <= 0.30): {verdict}; "
            f"FGSM-RS / PGD-10: {m['FGSM-RS'] / m[pgd]:.3f}; TRADES / PGD-10: {m['TRADES-10'] / m[pgd]:.3f}"
        )
    console.print(load.summary())


if __name__ == "__main__":
    main()
