"""Few-shot adaptation in one run (issue 18): accuracy per (method, k), robustness deltas, caching.

1. **Accuracy**: every registered method on each set (default digits and lfw-subset) at
   k = ``--shots`` with ``--seeds`` seeds, one frozen backbone (``--backbone``, default
   EfficientNet-Lite0 with its packaged ImageNet weights and the attention-pool head at
   ``--size`` px); mean ± std of query accuracy over seeds (the same ``--n-query`` query
   images for every episode of a set). Full fine-tuning trains the whole network on images,
   ~100× slower than the rest on 2 shared cores: it runs only at k ≤ ``--full-max-k`` with
   ``--full-epochs`` epochs (stated in the output).
2. **Robustness**: on the first set at k = ``--robust-k``, seed 0, each method's adapted model
   and the unadapted backbone (nearest class mean on frozen features) go through the project's
   evaluation (FGSM, PGD-3 at ε = 2/255, Gaussian noise and contrast at severity 3) on
   ``--robust-n`` query images, for ``--robust-methods``; the table is adapted − unadapted.
3. **Caching**: SAFE episodes per second at k = ``--robust-k`` with the pre-pool maps cached
   vs recomputed every step (fresh caches, the same episodes), and the ratio.

Goal (issue 18): SAFE ≥ linear probe and ≥ Tip-Adapter-F at k ≥ 4 on two sets, SAFE-A best
overall; the stand-in backbone may not show it (reported as measured).

usage: nice -n 10 python benchmarks/fewshot.py [--sets digits,lfw-subset] [--seeds 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np
import torch

from trustflow.models.vision.attention_pool import build_backbone
from trustflow.tasks.fewshot.data import load_fewshot_set, make_episode
from trustflow.tasks.fewshot.evaluate import Caches, run_episode
from trustflow.tasks.fewshot.methods.base import FEWSHOT_METHODS, AdaptConfig
from trustflow.tasks.fewshot.robustness import robustness_deltas, subset

ATTACKS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("clean", {}),
    ("fgsm", {"eps": 2 / 255}),
    ("pgd", {"eps": 2 / 255, "steps": 3}),
)
CORRUPTIONS = ("gaussian_noise", "contrast")
ROBUST_METHODS = "prototype,linear_probe,tip_adapter_f,safe,safe_a,full_finetune"


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--backbone", default="efficientnet_lite0")
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--sets", default="digits,lfw-subset")
    ap.add_argument("--shots", default="1,2,4,8,16")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--methods", default=",".join(FEWSHOT_METHODS.names()))
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--n-query", type=int, default=300)
    ap.add_argument("--full-max-k", type=int, default=1)
    ap.add_argument("--full-epochs", type=int, default=3)
    ap.add_argument("--robust-k", type=int, default=4)
    ap.add_argument("--robust-n", type=int, default=50)
    ap.add_argument("--robust-methods", default=ROBUST_METHODS)
    ap.add_argument("--cache-episodes", type=int, default=2)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    methods = [m for m in args.methods.split(",") if m]
    shots = _ints(args.shots)
    backbone = build_backbone(args.backbone, size=args.size)
    print(f"backbone {args.backbone} at {args.size} px, torch threads {torch.get_num_threads()}", flush=True)
    results: dict[str, Any] = {"config": vars(args), "accuracy": {}, "robustness": {}, "caching": {}}
    t_all = time.perf_counter()
    sets = [load_fewshot_set(s) for s in args.sets.split(",") if s]

    # 1. accuracy per (set, method, k)
    for data in sets:
        caches = Caches.of(backbone, data)
        per: dict[str, dict[str, Any]] = {}
        for k in shots:
            for seed in range(args.seeds):
                episode = make_episode(data, k, seed, n_query=args.n_query)
                for method in methods:
                    spec = method
                    if method == "full_finetune":
                        if k > args.full_max_k:
                            continue
                        spec = f"full_finetune?epochs={args.full_epochs}"
                    r = run_episode(
                        spec,
                        backbone,
                        data,
                        episode,
                        caches,
                        AdaptConfig(epochs=args.epochs, batch_size=256, seed=seed),
                    )
                    cell = per.setdefault(method, {}).setdefault(str(k), {"acc": [], "fit_s": [], "info": []})
                    cell["acc"].append(r.accuracy)
                    cell["fit_s"].append(r.fit_seconds)
                    cell["info"].append({a: b for a, b in r.info.items() if isinstance(b, (int, float)) or b is None})
            print(f"{data.name} k={k} done ({time.perf_counter() - t_all:.0f} s)", flush=True)
        for cells in per.values():
            for cell in cells.values():
                cell["mean"], cell["std"] = float(np.mean(cell["acc"])), float(np.std(cell["acc"]))
        results["accuracy"][data.name] = per
        print(f"\n{data.name}: query accuracy mean ± std over {args.seeds} seeds (n_query={len(episode.query)})")
        print("method".ljust(15) + "".join(f"k={k}".rjust(15) for k in shots))
        for method in methods:
            row = per.get(method, {})
            texts = [f"{row[str(k)]['mean']:.3f}±{row[str(k)]['std']:.3f}" if str(k) in row else "-" for k in shots]
            print(method.ljust(15) + "".join(c.rjust(15) for c in texts), flush=True)

    # 2. robustness deltas (first set, k = robust_k, seed 0)
    data = sets[0]
    caches = Caches.of(backbone, data)
    episode = make_episode(data, args.robust_k, 0, n_query=args.robust_n)
    queries = subset(data.test, episode.query)
    base = run_episode("prototype", backbone, data, episode, caches, keep_model=True).model
    assert base is not None
    base_rows: list[dict[str, Any]] | None = None
    print(f"\nrobustness on {data.name}, k={args.robust_k}, seed 0, {len(episode.query)} queries: adapted − unadapted")
    for method in [m for m in args.robust_methods.split(",") if m]:
        spec = f"full_finetune?epochs={args.full_epochs}" if method == "full_finetune" else method
        model = run_episode(
            spec, backbone, data, episode, caches, AdaptConfig(epochs=args.epochs, batch_size=256), keep_model=True
        ).model
        assert model is not None
        t0 = time.perf_counter()
        out = robustness_deltas(model, base, queries, ATTACKS, CORRUPTIONS, (3,), unadapted_rows=base_rows)
        base_rows = out["rows"]
        results["robustness"][method] = {
            "adapted": {k: v for k, v in out["adapted"].items() if k != "corruption_accuracy"},
            "unadapted": {k: v for k, v in out["unadapted"].items() if k != "corruption_accuracy"},
            "delta": out["delta"],
            "mce_vs_baseline": out["mce_vs_baseline"],
        }
        d = out["delta"]
        print(
            f"{method:15s} clean {out['adapted']['clean_accuracy']:.3f} ({d['clean']:+.3f})  "
            + "  ".join(f"{k} {v:+.3f}" for k, v in d.items() if k != "clean")
            + f"  mCE/unadapted {out['mce_vs_baseline'] if out['mce_vs_baseline'] is None else round(out['mce_vs_baseline'], 3)}"
            + f"  ({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )

    # 3. caching: SAFE episodes per second with and without the cached maps (0 episodes: skipped)
    rates: dict[str, float] = {}
    for enabled in (True, False) if args.cache_episodes > 0 else ():
        fresh = Caches.of(backbone, data, enabled=enabled)
        t0 = time.perf_counter()
        for seed in range(args.cache_episodes):
            ep = make_episode(data, args.robust_k, 100 + seed, n_query=args.robust_n)
            run_episode("safe", backbone, data, ep, fresh, AdaptConfig(epochs=args.epochs, batch_size=256, seed=seed))
        rates["cached" if enabled else "uncached"] = args.cache_episodes / (time.perf_counter() - t0)
    if rates:
        rates["ratio"] = rates["cached"] / rates["uncached"]
        results["caching"] = rates
        print(
            f"\nSAFE episodes/s on {data.name} k={args.robust_k}: cached {rates['cached']:.3f}, "
            f"uncached {rates['uncached']:.3f}, ratio {rates['ratio']:.1f}x (cold caches: includes the query maps)"
        )
    results["seconds"] = time.perf_counter() - t_all
    print(f"total {results['seconds']:.0f} s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
