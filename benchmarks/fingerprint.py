"""Model provenance benchmark (arXiv 2505.01007 on Fashion-MNIST → digits, CPU).

Trains ``--sources`` small CNNs with the fingerprint module (different seeds) on a
Fashion-MNIST subset, one same-seed model without the module (clean-accuracy cost), and
``--independent`` further fingerprinted models (unrelated). Each source is attacked:
scale, permute, prune, and the combined attack (permute + scale + fine-tune on digits
resized to 28×28) at each ``--lrs``. Then every suspect is scored against every source by
ρ and by the two baselines (weight cosine, linear CKA on a probe batch), on Ray and in one
process (timed), the tracing threshold is calibrated on the pool, and it prints the ρ
table, tracing accuracy per attack for each method, AUCs, the clean-accuracy cost and ρ
after scale/permute.

    python benchmarks/fingerprint.py [--train 10000] [--epochs 2] [--sources 3] [--independent 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from trustflow.data.vision.datasets import load_dataset
from trustflow.models.fingerprint.checkpoint import load_model, save_model
from trustflow.models.fingerprint.module import insert_fingerprint
from trustflow.models.vision import build_classifier
from trustflow.tasks.provenance.attacks.base import AttackContext, make_attack
from trustflow.tasks.provenance.train import accuracy, train_classifier
from trustflow.tasks.provenance.verify import METHODS, score_pool, trace

ARCH, LAYER = "small_cnn", "net.3"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", type=int, default=10000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--sources", type=int, default=3)
    ap.add_argument("--independent", type=int, default=2)
    ap.add_argument("--lrs", default="0.01,0.1")
    ap.add_argument("--ft-epochs", type=int, default=3)
    ap.add_argument("--no-ray", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    t_start = time.perf_counter()
    train = load_dataset("fashion-mnist", "train").subset(args.train)
    test = load_dataset("fashion-mnist", "test").subset(2000)
    digits_test = load_dataset("digits", "test", 28)
    ctx = AttackContext(image_size=28)
    workdir = Path(tempfile.mkdtemp(prefix="fingerprint-bench-"))

    def fresh(seed: int, fingerprint: bool) -> torch.nn.Module:
        torch.manual_seed(seed)
        m = build_classifier(ARCH, 10, 1, train.mean, train.std)
        if fingerprint:
            insert_fingerprint(m, {"layer": LAYER, "seed": seed})
        train_classifier(m, train, epochs=args.epochs, lr=0.05, seed=seed)
        return m

    print(f"== training {args.sources} sources + {args.independent} independent on {len(train)} Fashion-MNIST images")
    sources, paths, truth, groups, acc = {}, {}, {}, {}, {}
    for i in range(args.sources + args.independent):
        t = time.perf_counter()
        name = f"src{i}" if i < args.sources else f"indep{i - args.sources}"
        m = fresh(100 + i, True)
        paths[name] = save_model(workdir / f"{name}.pt", m, ARCH)
        acc[name] = accuracy(m, test)
        if i < args.sources:
            sources[name] = m
        else:
            truth[name], groups[name] = None, "independent"
        print(f"  {name}: clean acc {acc[name]:.3f} ({time.perf_counter() - t:.0f} s)")
    plain = fresh(100, False)
    cost = acc["src0"] - accuracy(plain, test)
    print(f"  src0 without module (same seed): {accuracy(plain, test):.3f} → cost {100 * cost:+.1f} points")

    lrs = [float(v) for v in args.lrs.split(",")]
    attacks = {"scale": "scale", "permute": "permute", "prune": "prune?amount=0.3"}
    for lr in lrs:
        attacks[f"fine_tune lr={lr:g}"] = f"fine_tune?lr={lr}&epochs={args.ft_epochs}"
        attacks[f"combined lr={lr:g}"] = f"combined?lr={lr}&epochs={args.ft_epochs}"
    print(f"== attacks: {', '.join(attacks)}")
    digits_acc: dict[str, list[float]] = {}
    for si, (sname, model) in enumerate(sources.items()):
        for label, spec in attacks.items():
            attacked = make_attack(spec, seed=si).apply(model, ctx)
            name = f"{sname}-{label.replace(' ', '_').replace('=', '')}"
            paths[name] = save_model(workdir / f"{name}.pt", attacked, ARCH)
            truth[name], groups[name] = sname, label
            if "fine_tune" in spec or "combined" in spec:
                digits_acc.setdefault(label, []).append(accuracy(attacked, digits_test))
    print(f"  attacks done ({time.perf_counter() - t_start:.0f} s so far)")
    for label, v in digits_acc.items():
        print(f"  {label}: digits test accuracy of the attacked models {np.mean(v):.3f}")

    probe = test.x[:256]
    src_paths = [str(paths[s]) for s in sources]
    sus_paths = [str(paths[s]) for s in truth]
    rows, t_one = score_pool(src_paths, sus_paths, probe, use_ray=False)
    t_ray = float("nan")
    if not args.no_ray:
        from trustflow.infra.ray_runtime import ensure_ray
        from trustflow.settings import load_settings

        ensure_ray(load_settings())
        _, t_ray = score_pool(src_paths, sus_paths, probe, use_ray=True)
    print(
        f"== verification of {len(sus_paths)} suspects × {len(src_paths)} sources: one process {t_one:.1f} s, Ray {t_ray:.1f} s"
    )

    print("== ρ (fingerprint score) of each suspect against its true source (independent: max over sources)")
    table: dict[str, list[float]] = {}
    for s in truth:
        mine = [r for r in rows if r["suspect"] == s]
        val = (
            max(r["fingerprint"] for r in mine)
            if truth[s] is None
            else next(r["fingerprint"] for r in mine if r["source"] == truth[s])
        )
        table.setdefault(groups[s], []).append(val)
    for g, vals in table.items():
        print(f"  {g:<22} ρ = {', '.join(f'{v:.3f}' for v in vals)}")
    print("== tracing accuracy per attack (threshold calibrated on the pool)")
    results = {m: trace(rows, truth, groups, m) for m in METHODS}
    header = f"  {'group':<22}" + "".join(f"{m:>15}" for m in METHODS)
    print(header)
    for g in table:
        print(f"  {g:<22}" + "".join(f"{results[m].per_group.get(g, float('nan')):>15.2f}" for m in METHODS))
    print(f"  {'ALL':<22}" + "".join(f"{results[m].accuracy:>15.2f}" for m in METHODS))
    print(f"  {'threshold':<22}" + "".join(f"{results[m].threshold:>15.3f}" for m in METHODS))
    print(f"  {'pair AUC':<22}" + "".join(f"{results[m].auc:>15.3f}" for m in METHODS))
    print(f"== total {time.perf_counter() - t_start:.0f} s; checkpoints in {workdir}")
    for p in workdir.glob("*.pt"):
        p.unlink()
    workdir.rmdir()
    _ = load_model  # re-exported for readers of the script: how a checkpoint comes back


if __name__ == "__main__":
    main()
