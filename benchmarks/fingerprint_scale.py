#!/usr/bin/env python
"""Verification of 100 suspect models against the sources: Ray (2 workers) vs one process.

The pool: ``--sources`` fingerprinted ``small_cnn`` (module at ``net.3``, 28×28 grey input,
briefly trained on Fashion-MNIST so their filters are not just the initialisation) and
``--suspects`` models made from them, cycling over: the permute attack, the scale attack
(both function-preserving, so ρ = 1 against the true source), and independent fingerprinted
models (other seeds, ρ ≈ 0). Each suspect is scored against every source by the three
methods of the trace flow (ρ, weight cosine, linear CKA on a 128-image probe batch), with
the function the flow's Ray tasks run (``tasks/provenance/stages.score_one``: checkpoint bytes
in, rows out).

* **one process**: ``score_one`` for each suspect in turn (torch limited to 1 thread, as in a
  Ray task).
* **Ray**: one Ray task per suspect (``ray_map``) on a local Ray with ``--workers`` CPUs,
  started before timing (its start-up is reported apart).

Both paths cache the prepared sources per process (``score_one``), as the flow's workers do.
The two runs get the same inputs; the script asserts the same rows (keys and scores equal to
1e-12) and that every permuted/scaled suspect has ρ = 1 against its source. Prints a table,
the ratio, and the CPU other processes used meanwhile (``load_monitor.OtherLoad``).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_monitor import OtherLoad  # noqa: E402  (sibling module: scripts run from benchmarks/)


def build_pool(n_sources: int, n_suspects: int, train_limit: int) -> tuple[list, list, dict]:
    """(source blobs, suspect blobs, suspect → (true source or None, kind))."""
    import torch

    from trustflow.data.vision.datasets import load_dataset
    from trustflow.models.fingerprint.checkpoint import save_model
    from trustflow.models.fingerprint.module import insert_fingerprint
    from trustflow.models.vision.spec import load_classifier
    from trustflow.tasks.provenance.attacks.base import AttackContext, make_attack
    from trustflow.tasks.provenance.stages import Blob
    from trustflow.tasks.provenance.train import train_classifier

    data = load_dataset("fashion-mnist", "train").subset(train_limit)

    def model(seed: int, steps: int) -> torch.nn.Module:
        torch.manual_seed(seed)
        m = load_classifier("small_cnn", num_classes=10, in_channels=1, mean=data.mean, std=data.std)
        insert_fingerprint(m, {"layer": "net.3", "seed": seed})
        train_classifier(m, data, epochs=1, lr=0.05, seed=seed, max_steps=steps)
        return m

    def blob(name: str, m: torch.nn.Module) -> Blob:
        buf = Path(os.environ.get("TMPDIR", "/tmp")) / f"fp-scale-{os.getpid()}.pt"
        save_model(buf, m, "small_cnn")
        data_bytes = buf.read_bytes()
        buf.unlink()
        return Blob(name, data_bytes)

    sources = {f"src{i}": model(i, 20) for i in range(n_sources)}
    source_blobs = [blob(k, v) for k, v in sources.items()]
    suspects, truth = [], {}
    kinds = ("permute", "scale", "independent")
    for j in range(n_suspects):
        kind = kinds[j % 3]
        src = f"src{j % n_sources}"
        name = f"sus{j:03d}-{kind}"
        if kind == "independent":
            m, truth[name] = model(1000 + j, 3), (None, kind)
        else:
            m = make_attack(kind, seed=j).apply(sources[src], AttackContext(image_size=28))
            truth[name] = (src, kind)
        suspects.append(blob(name, m))
    return source_blobs, suspects, truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sources", type=int, default=2)
    parser.add_argument("--suspects", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--probe-size", type=int, default=128)
    parser.add_argument("--train-limit", type=int, default=2000)
    args = parser.parse_args()

    import torch
    from rich.console import Console
    from rich.table import Table

    from trustflow.infra.ray_runtime import ensure_ray, shutdown_ray
    from trustflow.settings import load_settings
    from trustflow.tasks.provenance.stages import probe_batch, score_one
    from trustflow.tasks.ray_parts import ray_map

    console = Console(file=io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", line_buffering=True))
    t0 = time.perf_counter()
    sources, suspects, truth = build_pool(args.sources, args.suspects, args.train_limit)
    probe = probe_batch("fashion-mnist", None, args.probe_size)
    console.print(f"pool: {len(sources)} sources, {len(suspects)} suspects, built in {time.perf_counter() - t0:.1f} s")

    with OtherLoad() as load:
        threads = torch.get_num_threads()
        t = time.perf_counter()
        local = [score_one(s, sources, probe) for s in suspects]
        local_s = time.perf_counter() - t
        console.print(f"one process: {local_s:.1f} s")
        torch.set_num_threads(threads)

        t = time.perf_counter()
        ensure_ray(load_settings(ray_num_cpus=args.workers))
        ray_start_s = time.perf_counter() - t
        t = time.perf_counter()
        remote = ray_map(score_one, [(s, sources, probe) for s in suspects], "fingerprint scores")
        ray_s = time.perf_counter() - t
        shutdown_ray()

    flat = lambda parts: {(r["suspect"], r["source"], r["method"]): r["score"] for p in parts for r in p}  # noqa: E731
    a, b = flat(local), flat(remote)
    assert a.keys() == b.keys(), "Ray and one process scored different pairs"
    worst = max(abs(a[k] - b[k]) for k in a)
    assert worst <= 1e-12, f"Ray and one process disagree by {worst}"
    for name, (src, _kind) in truth.items():
        if src is not None:
            assert a[(name, src, "ours")] == 1.0, f"{name}: ρ {a[(name, src, 'ours')]} against {src}"
    indep = [a[(n, s.ref, "ours")] for n, (src, _) in truth.items() if src is None for s in sources]

    table = Table(title=f"verification of {len(suspects)} suspects × {len(sources)} sources (3 methods)")
    for col in ("run", "wall s", "suspects/s", "ratio vs one process"):
        table.add_column(col, justify="right")
    table.add_row("one process (1 torch thread)", f"{local_s:.2f}", f"{len(suspects) / local_s:.2f}", "1.00")
    table.add_row(
        f"Ray, {args.workers} workers (1 task per suspect)",
        f"{ray_s:.2f}",
        f"{len(suspects) / ray_s:.2f}",
        f"{local_s / ray_s:.2f}",
    )
    console.print(table)
    console.print(
        f"Ray start-up (not in the figures): {ray_start_s:.1f} s; results identical (max |Δ| {worst:.1e}); "
        f"ρ = 1.00 for every permuted/scaled suspect, independent max ρ {max(indep) if indep else float('nan'):.2f}"
    )
    console.print(load.summary())


if __name__ == "__main__":
    main()
