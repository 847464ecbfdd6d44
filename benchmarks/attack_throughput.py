#!/usr/bin/env python
"""PGD throughput: trustflow's evaluation ``pgd`` vs ``torchattacks.PGD`` on the same model and data.

Both run PGD-``steps`` (default 10) at L∞ ε = 8/255, α = 2/255, with a random start, in eval
mode, on the same batches:

* ``--arch small_cnn`` (default): small_cnn (width 16, random init) on the scikit-learn digits
  test split upsampled to 32×32 (360 grey images, batches of ``--batch``);
* ``--arch preact_resnet18``: PreAct ResNet-18 (random init) on one random 3×32×32 batch
  of ``--batch`` images.

The attack cost does not depend on the weights, so the models are untrained. An untimed
round comes first; then ``--repeat`` rounds alternate which implementation goes first, and
each figure is the median. images/s = images attacked / wall seconds; images/CPU-s uses
this process's CPU time, which other load on a shared machine disturbs less. Goal: ratio ours /
torchattacks >= 1.0. torch runs ``--threads`` threads (default 1: on a shared 2-core machine
OpenMP's two threads spin against other load and make both arms erratic).

    nice -n 10 .venv/bin/python benchmarks/attack_throughput.py [--arch small_cnn|preact_resnet18]
        [--batch 128] [--steps 10] [--repeat 5] [--threads 1]

A benchmark, not a test: it always exits 0 unless something breaks.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from load_monitor import OtherLoad  # sibling module (scripts run from benchmarks/)
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))


def build(arch: str, batch: int) -> tuple[torch.nn.Module, list[tuple[torch.Tensor, torch.Tensor]], str]:
    from trustflow.data.vision import load_dataset
    from trustflow.models.vision import load_classifier

    torch.manual_seed(0)
    if arch == "small_cnn":
        data = load_dataset("digits", "test", size=32)
        model = load_classifier("small_cnn?width=16", data.num_classes, data.in_channels, data.mean, data.std)
        x, y = data.tensors()
        batches = [(x[i : i + batch], y[i : i + batch]) for i in range(0, len(y), batch)]
        return model, batches, f"small_cnn (width 16) on digits@32 test ({len(y)} images, 1×32×32)"
    model = load_classifier("preact_resnet18", 10, 3)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (batch,), generator=g)
    return model, [(x, y)], f"preact_resnet18 on one random batch ({batch} images, 3×32×32)"


def _rate(v: float) -> str:
    return f"{v:,.1f}" if v < 100 else f"{v:,.0f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", choices=["small_cnn", "preact_resnet18"], default="small_cnn")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    console = Console()
    torch.set_num_threads(args.threads)

    import torchattacks

    from trustflow.tasks.robustness.attacks import build_attack

    model, batches, what = build(args.arch, args.batch)
    model.eval()
    n_images = sum(len(y) for _, y in batches)
    eps, alpha = 8 / 255, 2 / 255
    ours = build_attack("pgd", {"eps": eps, "alpha": alpha, "steps": args.steps, "random_start": True})
    theirs = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=args.steps, random_start=True)

    def run_ours() -> torch.Tensor:
        gen = torch.Generator().manual_seed(0)
        return torch.cat([ours(model, x, y, gen) for x, y in batches])

    def run_theirs() -> torch.Tensor:
        return torch.cat([theirs(x, y) for x, y in batches])

    arms = {"trustflow pgd": run_ours, "torchattacks.PGD": run_theirs}
    console.print(
        f"PGD-{args.steps}, L∞ ε=8/255, α=2/255, random start; {what}; batch {args.batch}; "
        f"torch {torch.__version__}, {args.threads} thread(s), {os.cpu_count()} CPUs"
    )
    times: dict[str, list[float]] = {k: [] for k in arms}
    cpu: dict[str, list[float]] = {k: [] for k in arms}
    robust: dict[str, float] = {}
    with OtherLoad() as load:
        for fn in arms.values():  # untimed warm-up round
            fn()
        for r in range(args.repeat):
            order = list(arms) if r % 2 == 0 else list(arms)[::-1]
            for name in order:
                t0, c0 = time.perf_counter(), time.process_time()
                x_adv = arms[name]()
                times[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
                if name not in robust:
                    y_all = torch.cat([y for _, y in batches])
                    with torch.no_grad():
                        robust[name] = (model(x_adv).argmax(1) == y_all).float().mean().item()

    table = Table(title=f"PGD-{args.steps} throughput ({args.arch}, median of {args.repeat})")
    for col in ("implementation", "median s", "best s", "images/s", "median CPU s", "images/CPU-s", "robust acc"):
        table.add_column(col, justify="left" if col == "implementation" else "right")
    rate, cpu_rate = {}, {}
    for name, ts in times.items():
        med, cpu_med = statistics.median(ts), statistics.median(cpu[name])
        rate[name], cpu_rate[name] = n_images / med, n_images / cpu_med
        table.add_row(
            name,
            f"{med:.3f}",
            f"{min(ts):.3f}",
            _rate(rate[name]),
            f"{cpu_med:.3f}",
            _rate(cpu_rate[name]),
            f"{robust[name]:.3f}",
        )
    console.print(table)
    ratio = rate["trustflow pgd"] / rate["torchattacks.PGD"]
    best_ratio = min(times["torchattacks.PGD"]) / min(times["trustflow pgd"])
    verdict = "meets goal" if ratio >= 1.0 else ("at parity (within 3 %)" if ratio >= 0.97 else "below goal")
    cpu_ratio = cpu_rate["trustflow pgd"] / cpu_rate["torchattacks.PGD"]
    console.print(
        f"ratio ours / torchattacks (images/s, medians): {ratio:.3f}  best-vs-best: {best_ratio:.3f}  "
        f"per CPU-second: {cpu_ratio:.3f}  -> {verdict}"
    )
    console.print("(robust acc is on an untrained model: a sanity check that both arms attack the same way)")
    console.print(load.summary())


if __name__ == "__main__":
    main()
