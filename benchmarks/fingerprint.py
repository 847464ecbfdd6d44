"""Model provenance benchmark (arXiv 2505.01007 on Fashion-MNIST → digits, CPU).

Part 1, the paper's module (r = 1, S′, unnormalised): trains ``--sources`` small CNNs with
the fingerprint module (different seeds) on a Fashion-MNIST subset, one same-seed model
without the module (clean-accuracy cost), and ``--independent`` unrelated fingerprinted
models. Each source is attacked: scale, permute, prune, fine-tune and the combined attack
(permute + scale + fine-tune on digits resized to 28×28) at each ``--lrs``. Every suspect
is scored against every source by ρ and by the two baselines (weight cosine, linear CKA on a
probe batch), the tracing threshold is calibrated on the pool, and it prints the ρ table,
tracing accuracy per attack for each method and the AUCs.

"Useful" fine-tuning lr: the attacked models' mean accuracy on the fine-tuning target
(digits test) is within ``--useful-margin`` of the best lr's; the highest useful lr is the
attack the tracing goal is judged at.

Part 2, variants, each trained and attacked in the same run (``--variants``; sources with
the same seeds, one independent model each, combined attack at ``--variant-lrs``): ``r0``
(radius 0 on a K-divisible virtual grid M′ = 30), ``norm`` (RMS-normalised module input),
``grid84`` (r = 1 on a virtual grid M′ = 84), ``r0norm``; plus ``cross`` (the paper's
models read at U × V only: no training). Per variant: clean-accuracy cost against the same
plain model, ρ after scale/permute, ρ and tracing accuracy (ours / weight cosine / CKA) per
combined lr, and the anti-overwriting check (source-task accuracy with the module's filters
re-drawn, and the pseudo-class rate under the overwrite noise ε).

    python benchmarks/fingerprint.py [--train 4000] [--epochs 2] [--sources 3] [--independent 2] [--ray]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trustflow.data.vision.datasets import ArrayDataset, load_dataset
from trustflow.models.fingerprint.checkpoint import load_model, save_model
from trustflow.models.fingerprint.module import (
    extract_fingerprint,
    fingerprint_layers,
    insert_fingerprint,
    overwrite_noise,
    pseudo_class,
)
from trustflow.models.vision import build_classifier
from trustflow.tasks.provenance.attacks.base import AttackContext, make_attack
from trustflow.tasks.provenance.train import accuracy, match_channels, train_classifier
from trustflow.tasks.provenance.verify import METHODS, fingerprint_score, score_pool, trace

ARCH, LAYER = "small_cnn", "net.3"
VARIANTS: dict[str, dict[str, Any]] = {
    "paper": {},
    "r0": {"radius": 0, "virtual_grid": 30},
    "norm": {"normalize": True},
    "grid84": {"virtual_grid": 84},
    "r0norm": {"radius": 0, "virtual_grid": 30, "normalize": True},
}


@torch.no_grad()
def overwrite_check(model: torch.nn.Module, data: ArrayDataset, seed: int = 0) -> tuple[float, float, float, float]:
    """What an overwrite costs the attacker, the model restored afterwards:
    (accuracy with the module's filters re-drawn; accuracy and ρ after an *informed* erase that
    re-draws only each kernel's zero-mean part, keeping every channel's tap sum; share
    predicted as the pseudo-class under W + ε)."""
    fp = next(iter(fingerprint_layers(model).values())).fingerprint
    x = torch.from_numpy(match_channels(data, int(getattr(model, "in_channels", data.in_channels))))
    saved = fp.weight.detach().clone()
    before = extract_fingerprint(model)
    g = torch.Generator().manual_seed(seed)
    fp.weight.copy_(torch.randn(saved.shape, generator=g) * saved.std())
    redrawn = accuracy(model, data)
    noise = torch.randn(saved.shape, generator=g) * saved.std()
    fp.weight.copy_(
        saved + noise - noise.mean(dim=(2, 3), keepdim=True) - (saved - saved.mean(dim=(2, 3), keepdim=True))
    )
    erased, erased_rho = accuracy(model, data), fingerprint_score(before, extract_fingerprint(model)).rho
    fp.weight.copy_(saved)
    n, hits = pseudo_class(model), 0
    grid = (int(fp.grid[0]), int(fp.grid[1]))
    for i in range(0, len(x), 256):
        fp.noise = overwrite_noise(fp.weight, grid, g, 0.5)
        hits += int((model(x[i : i + 256]).argmax(1) == n).sum())
    fp.noise = None
    return redrawn, erased, erased_rho, hits / max(1, len(x))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", type=int, default=4000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--sources", type=int, default=3)
    ap.add_argument("--independent", type=int, default=2)
    ap.add_argument("--lrs", default="0.003,0.01,0.03,0.1,0.3")
    ap.add_argument("--variant-lrs", default="0.03,0.1,0.3")
    ap.add_argument("--variants", default="r0,norm,grid84,cross", help=f"of {', '.join(VARIANTS)}, cross")
    ap.add_argument("--useful-margin", type=float, default=0.02, help="target accuracy within this of the best lr's")
    ap.add_argument("--ft-epochs", type=int, default=3)
    ap.add_argument("--ray", action="store_true", help="also time the verification on Ray")
    args = ap.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    t_start = time.perf_counter()
    train = load_dataset("fashion-mnist", "train").subset(args.train)
    test = load_dataset("fashion-mnist", "test").subset(2000)
    digits_test = load_dataset("digits", "test", 28)
    ctx = AttackContext(image_size=28)
    workdir = Path(tempfile.mkdtemp(prefix="fingerprint-bench-"))
    probe = test.x[:256]
    lrs = [float(v) for v in args.lrs.split(",")]
    variant_lrs = [float(v) for v in args.variant_lrs.split(",")]
    wanted = [v for v in args.variants.split(",") if v]

    def fresh(seed: int, options: dict[str, Any] | None) -> torch.nn.Module:
        torch.manual_seed(seed)
        m = build_classifier(ARCH, 10, 1, train.mean, train.std)
        if options is not None:
            insert_fingerprint(m, {"layer": LAYER, "seed": seed, **options})
        train_classifier(m, train, epochs=args.epochs, lr=0.05, seed=seed)
        return m

    def elapsed() -> str:
        return f"{time.perf_counter() - t_start:.0f} s"

    plain = fresh(100, None)
    plain_acc = accuracy(plain, test)
    print(f"== src0 seed without module: clean acc {plain_acc:.3f} ({elapsed()})")

    def build_pool(
        variant: str, n_indep: int, attacks: dict[str, str]
    ) -> tuple[dict[str, Any], dict[str, torch.nn.Module], dict[str, list[float]]]:
        """Train one variant's sources and independents, attack the sources, save everything."""
        opts = VARIANTS[variant]
        pool: dict[str, Any] = {"paths": {}, "truth": {}, "groups": {}, "acc": {}, "overwrite": {}}
        sources: dict[str, torch.nn.Module] = {}
        for i in range(args.sources + n_indep):
            name = f"{variant}-src{i}" if i < args.sources else f"{variant}-indep{i - args.sources}"
            m = fresh(100 + i, opts)
            pool["paths"][name] = save_model(workdir / f"{name}.pt", m, ARCH)
            pool["acc"][name] = accuracy(m, test)
            if i < args.sources:
                sources[name] = m
                pool["overwrite"][name] = overwrite_check(m, test, seed=i)
            else:
                pool["truth"][name], pool["groups"][name] = None, "independent"
        target_acc: dict[str, list[float]] = {}
        for si, (sname, model) in enumerate(sources.items()):
            for label, spec in attacks.items():
                attacked = make_attack(spec, seed=si).apply(model, ctx)
                name = f"{sname}-{label.replace(' ', '_').replace('=', '')}"
                pool["paths"][name] = save_model(workdir / f"{name}.pt", attacked, ARCH)
                pool["truth"][name], pool["groups"][name] = sname, label
                if "fine_tune" in spec or "combined" in spec:
                    target_acc.setdefault(label, []).append(accuracy(attacked, digits_test))
        print(f"  {variant}: {len(sources)} sources, {n_indep} independent, {len(attacks)} attacks each ({elapsed()})")
        return pool, sources, target_acc

    def score(pool: dict[str, Any], sources: dict[str, torch.nn.Module]) -> list[dict[str, Any]]:
        rows, t_one = score_pool([str(pool["paths"][s]) for s in sources], [str(p) for p in _sus(pool)], probe, False)
        pool["t_one"] = t_one
        return rows

    def _sus(pool: dict[str, Any]) -> list[Path]:
        return [pool["paths"][s] for s in pool["truth"]]

    def rho_table(pool: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, list[float]]:
        table: dict[str, list[float]] = {}
        for s, src in pool["truth"].items():
            mine = [r for r in rows if r["suspect"] == s]
            val = (
                max(r["fingerprint"] for r in mine)
                if src is None
                else next(r["fingerprint"] for r in mine if r["source"] == src)
            )
            table.setdefault(pool["groups"][s], []).append(val)
        return table

    # -- part 1: the paper's module, full attack set ----------------------------------------------
    attacks = {"scale": "scale", "permute": "permute", "prune": "prune?amount=0.3"}
    for lr in lrs:
        attacks[f"fine_tune lr={lr:g}"] = f"fine_tune?lr={lr}&epochs={args.ft_epochs}"
        attacks[f"combined lr={lr:g}"] = f"combined?lr={lr}&epochs={args.ft_epochs}"
    print(f"== part 1 (paper): attacks {', '.join(attacks)}")
    pool, sources, target_acc = build_pool("paper", args.independent, attacks)
    cost = pool["acc"]["paper-src0"] - plain_acc
    print(f"  clean acc: {', '.join(f'{k} {v:.3f}' for k, v in pool['acc'].items())}")
    print(f"  module cost (src0 vs same seed without): {100 * cost:+.1f} points")
    rows = score(pool, sources)
    if args.ray:
        from trustflow.infra.ray_runtime import ensure_ray
        from trustflow.settings import load_settings

        ensure_ray(load_settings())
        _, t_ray = score_pool([str(pool["paths"][s]) for s in sources], [str(p) for p in _sus(pool)], probe, True)
        print(f"  verification on Ray: {t_ray:.1f} s")
    print(
        f"  verification of {len(pool['truth'])} suspects × {len(sources)} sources in one process: {pool['t_one']:.1f} s"
    )

    print("== usefulness: attacked models' accuracy on the fine-tuning target (digits test), mean over sources")
    combined_acc = {lr: float(np.mean(target_acc[f"combined lr={lr:g}"])) for lr in lrs}
    best = max(combined_acc.values())
    useful = [lr for lr in lrs if combined_acc[lr] >= best - args.useful_margin]
    top = max(useful)
    for lr in lrs:
        ft = float(np.mean(target_acc[f"fine_tune lr={lr:g}"]))
        mark = "useful" if lr in useful else "not useful"
        print(f"  lr {lr:<6g} fine_tune {ft:.3f}  combined {combined_acc[lr]:.3f}  ({mark})")
    print(
        f"  useful: combined target accuracy >= best ({best:.3f}) - {args.useful_margin:g}; highest useful lr = {top:g}"
    )

    print("== ρ of each suspect against its true source (independent: max over sources)")
    table = rho_table(pool, rows)
    for g, vals in table.items():
        print(f"  {g:<22} ρ = {', '.join(f'{v:.3f}' for v in vals)}")
    print("== tracing accuracy per attack (threshold calibrated on the pool)")
    results = {m: trace(rows, pool["truth"], pool["groups"], m) for m in METHODS}
    print(f"  {'group':<22}" + "".join(f"{m:>15}" for m in METHODS))
    for g in table:
        print(f"  {g:<22}" + "".join(f"{results[m].per_group.get(g, float('nan')):>15.2f}" for m in METHODS))
    print(f"  {'ALL':<22}" + "".join(f"{results[m].accuracy:>15.2f}" for m in METHODS))
    print(f"  {'threshold':<22}" + "".join(f"{results[m].threshold:>15.3f}" for m in METHODS))
    print(f"  {'pair AUC':<22}" + "".join(f"{results[m].auc:>15.3f}" for m in METHODS))

    # -- part 2: variants, same attacks on a smaller pool ----------------------------------------
    v_attacks = {"scale": "scale", "permute": "permute"}
    for lr in variant_lrs:
        v_attacks[f"combined lr={lr:g}"] = f"combined?lr={lr}&epochs={args.ft_epochs}"
    summary: list[tuple[str, dict[str, Any]]] = []

    def restricted(pool_: dict[str, Any], n_indep: int) -> tuple[dict[str, Any], dict[str, Any]]:
        keep = {s for s, g in pool_["groups"].items() if g in v_attacks or g == "independent"}
        indep = [s for s in keep if pool_["truth"][s] is None][:n_indep]
        keep = {s for s in keep if pool_["truth"][s] is not None} | set(indep)
        return {s: pool_["truth"][s] for s in keep}, {s: pool_["groups"][s] for s in keep}

    def summarise(
        variant: str, pool_: dict[str, Any], rows_: list[dict[str, Any]], tacc: dict[str, list[float]]
    ) -> None:
        truth, groups = restricted(pool_, 1)
        rows_ = [r for r in rows_ if r["suspect"] in truth]
        res = {m: trace(rows_, truth, groups, m) for m in METHODS}
        sub = {"truth": truth, "groups": groups}
        tab = rho_table(sub, rows_)
        src0 = next(k for k in pool_["acc"] if k.endswith("src0"))
        info = {
            "cost": pool_["acc"][src0] - plain_acc,
            "acc": pool_["acc"][src0],
            "rho_sp": min(tab["scale"] + tab["permute"]),
            "rho": {lr: tab[f"combined lr={lr:g}"] for lr in variant_lrs},
            "indep": max(tab["independent"]),
            "trace": {lr: [res[m].per_group[f"combined lr={lr:g}"] for m in METHODS] for lr in variant_lrs},
            "all": [res[m].accuracy for m in METHODS],
            "target": {lr: float(np.mean(tacc.get(f"combined lr={lr:g}", [float("nan")]))) for lr in variant_lrs},
            "overwrite": pool_["overwrite"],
        }
        summary.append((variant, info))

    summarise("paper", pool, rows, target_acc)
    if "cross" in wanted:  # same models and checkpoints, fingerprint read at U × V only
        t0 = time.perf_counter()
        truth, _ = restricted(pool, 1)
        cross_rows = []
        loaded = {s: load_model(pool["paths"][s]) for s in sources}
        src_fp = {s: extract_fingerprint(m, selection="cross") for s, m in loaded.items()}
        for sus in truth:
            model = load_model(pool["paths"][sus])
            base = {r["source"]: r for r in rows if r["suspect"] == sus}
            for s, fp in src_fp.items():
                sfp = extract_fingerprint(model, fp.layer, fp.grid, "cross")
                cross_rows.append({**base[s], "fingerprint": fingerprint_score(fp, sfp).rho})
        summarise("cross", pool, cross_rows, target_acc)
        print(f"  cross: re-scored in {time.perf_counter() - t0:.1f} s")
    print(f"== part 2: variants {', '.join(wanted)}; attacks {', '.join(v_attacks)}")
    for variant in wanted:
        if variant == "cross":
            continue
        vpool, vsources, vacc = build_pool(variant, 1, v_attacks)
        summarise(variant, vpool, score(vpool, vsources), vacc)

    print(f"== summary: combined attack (permute + scale + fine-tune {args.ft_epochs} epochs on digits)")
    print(f"   tracing accuracy ours / weight cosine / CKA; highest useful lr = {top:g}")
    head = f"  {'variant':<8}{'cost':>7}{'ρ s/p':>7}{'indep':>7}"
    for lr in variant_lrs:
        head += f"{f'ρ lr={lr:g}':>20}{f'trace lr={lr:g}':>22}{'tgt':>6}"
    print(head + f"{'redrawn':>9}{'erased':>8}{'ρ erased':>10}{'pseudo':>8}")
    for variant, info in summary:
        line = f"  {variant:<8}{100 * info['cost']:>+7.1f}{info['rho_sp']:>7.2f}{info['indep']:>7.2f}"
        for lr in variant_lrs:
            rho = "/".join(f"{v:.2f}" for v in info["rho"][lr])
            tr = " / ".join(f"{v:.2f}" for v in info["trace"][lr])
            line += f"{rho:>20}{tr:>22}{info['target'][lr]:>6.3f}"
        ow = [v for v in info["overwrite"].values()]
        line += "".join(f"{np.mean([o[i] for o in ow]):>{w}.3f}" for i, w in ((0, 9), (1, 8), (2, 10), (3, 8)))
        print(line)
    print("  (cost: src0 clean acc minus the same seed without module, points; tgt: digits accuracy of the")
    print("   attacked models; redrawn: source-task accuracy with the module's filters re-drawn; erased: the")
    print("   same and ρ when only the zero-mean part of each kernel is re-drawn; pseudo: share predicted as")
    print("   the pseudo-class under W+ε; all mean over sources)")
    print(f"== total {elapsed()}")
    for p in workdir.glob("*.pt"):
        p.unlink()
    workdir.rmdir()


if __name__ == "__main__":
    main()
