"""The project's CUDA paths on one GPU, with a baseline measured in the same run.

Run where a GPU is lent (see the README of benchmarks/): it needs torch, torchvision and
pydantic only — no Prefect, Ray or store — so it runs under an accelerator image's Python.
Each part prints a table and a ratio against its baseline:

1. Evaluation attacks: PGD-10 (L∞, ε 8/255) through ``EVAL_ATTACKS`` vs a plain PGD loop
   written here (same model, batch, steps); clean forward throughput for scale.
2. Training methods: images/s of standard, FGSM-RS, FGSM-LAW, PGD-AT (10 steps) and TRADES
   (10 steps) through the project's ``train_one_epoch``; ratio = method / standard.
3. Detector inference: ``torchvision:fasterrcnn_resnet50_fpn`` (random weights: throughput
   only) through the detector backend at batch 1/8/32 vs the torchvision model called directly.

``--quick`` shrinks everything (a CPU smoke run); ``--out FILE`` writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device, repeats: int, warmup: int = 1) -> float:
    """Median seconds of ``fn`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]


def table(title: str, header: list[str], rows: list[list[Any]]) -> None:
    print(f"\n## {title}")
    print(" | ".join(header))
    for row in rows:
        print(" | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row))


def reference_pgd(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int) -> torch.Tensor:
    """The baseline: the textbook L∞ PGD loop (random start, sign step 2.5ε/steps)."""
    alpha = 2.5 * eps / steps
    x_adv = (x + torch.empty_like(x).uniform_(-eps, eps)).clamp(0, 1)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(model(x_adv), y)
        (grad,) = torch.autograd.grad(loss, x_adv)
        x_adv = torch.min(torch.max(x_adv.detach() + alpha * grad.sign(), x - eps), x + eps).clamp(0, 1)
    return x_adv.detach()


def build_model(arch: str, device: torch.device) -> torch.nn.Module:
    from trustflow.models.vision.architectures import build_classifier

    return build_classifier(arch, num_classes=10).to(device).to(memory_format=torch.channels_last)


def part_attacks(device: torch.device, quick: bool) -> dict[str, Any]:
    from trustflow.tasks.robustness.attacks import build_attack

    arch, batch, repeats = ("small_cnn", 32, 1) if quick else ("preact_resnet18", 512, 5)
    model = build_model(arch, device).eval()
    x = torch.rand(batch, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), device=device)
    gen = torch.Generator().manual_seed(0)
    attack = build_attack("pgd", {"eps": "8/255", "steps": 10})
    with torch.no_grad():
        t_clean = timed(lambda: model(x), device, repeats)
    t_ours = timed(lambda: attack(model, x, y, gen), device, repeats)
    t_ref = timed(lambda: reference_pgd(model, x, y, 8 / 255, 10), device, repeats)
    rows = [
        ["clean forward", batch / t_clean, ""],
        ["PGD-10 reference loop", batch / t_ref, 1.0],
        ["PGD-10 EVAL_ATTACKS", batch / t_ours, t_ref / t_ours],
    ]
    table(
        f"Evaluation attacks ({arch}, batch {batch}, 32x32, {device})", ["path", "images/s", "ratio vs reference"], rows
    )
    return {
        "arch": arch,
        "batch": batch,
        "clean_ips": batch / t_clean,
        "pgd_ref_ips": batch / t_ref,
        "pgd_ours_ips": batch / t_ours,
        "ratio": t_ref / t_ours,
    }


def part_training(device: torch.device, quick: bool) -> dict[str, Any]:
    from trustflow.tasks.robustness.training import TrainState, make_method, train_one_epoch

    arch, batch, steps = ("small_cnn", 32, 2) if quick else ("preact_resnet18", 256, 12)
    methods = {
        "standard": {},
        "fgsm_rs": {"eps": 8 / 255},
        "fgsm_law": {"eps": 8 / 255},
        "pgd_at": {"eps": 8 / 255, "steps": 10},
        "trades": {"eps": 8 / 255, "steps": 10},
    }
    xs = torch.rand(batch * steps, 3, 32, 32)
    ys = torch.randint(0, 10, (batch * steps,))
    loader = [(xs[i : i + batch], ys[i : i + batch]) for i in range(0, len(xs), batch)]
    out: dict[str, Any] = {"arch": arch, "batch": batch}
    rows = []
    for name, options in methods.items():
        try:
            model = build_model(arch, device)
            method = make_method(name, **options)
            opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            state = TrainState()
            train_one_epoch(model, method, loader[:1], opt, None, state, device)  # warm-up
            _sync(device)
            start = time.perf_counter()
            metrics = train_one_epoch(model, method, loader, opt, None, state, device)
            _sync(device)
            ips = metrics.get("samples", batch * steps) / (time.perf_counter() - start)
            out[name] = ips
        except Exception as exc:  # one method's failure must not hide the others' figures
            out[name] = f"error: {exc!r}"
            ips = float("nan")
        rows.append([name, ips, ips / out["standard"] if isinstance(out.get("standard"), float) else ""])
    table(
        f"Training methods ({arch}, batch {batch}, {steps} steps, {device})",
        ["method", "images/s", "vs standard"],
        rows,
    )
    return out


def part_detector(device: torch.device, quick: bool) -> dict[str, Any]:
    import numpy as np

    from trustflow.models.detection import load_detector

    batches = (1, 2) if quick else (1, 8, 32)
    h, w = (240, 320) if quick else (480, 640)
    n_images = 4 if quick else 64
    spec = f"torchvision:fasterrcnn_resnet50_fpn?random=1&device={device.type}"
    detector = load_detector(spec + "&batch_size=1", {1: "person"})
    model = detector.inner.model if hasattr(detector, "inner") else detector.model  # type: ignore[attr-defined]
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n_images)]
    rows = []
    out: dict[str, Any] = {"spec": spec, "image": f"{w}x{h}", "images": n_images}
    for bs in batches:
        det = load_detector(f"{spec}&batch_size={bs}", {1: "person"})

        def ours(det: Any = det) -> None:
            det.detect(images)

        def direct(bs: int = bs) -> None:
            with torch.inference_mode():
                for i in range(0, n_images, bs):
                    chunk = [
                        torch.from_numpy(im).to(device).permute(2, 0, 1).float().div_(255) for im in images[i : i + bs]
                    ]
                    model(chunk)

        t_ours = timed(ours, device, 1 if quick else 3)
        t_direct = timed(direct, device, 1 if quick else 3)
        rows.append([bs, n_images / t_direct, n_images / t_ours, t_direct / t_ours])
        out[f"batch{bs}"] = {"direct_ips": n_images / t_direct, "ours_ips": n_images / t_ours}
    table(
        f"Faster R-CNN R50-FPN inference ({w}x{h}, {device})", ["batch", "direct img/s", "backend img/s", "ratio"], rows
    )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (CPU smoke run)")
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    parser.add_argument("--parts", default="attacks,training,detector")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": str(device),
        "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
    }
    print(json.dumps(info))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    results: dict[str, Any] = {"info": info}
    parts = {"attacks": part_attacks, "training": part_training, "detector": part_detector}
    for name in args.parts.split(","):
        try:
            results[name] = parts[name](device, args.quick)
        except Exception:
            traceback.print_exc()
            results[name] = {"error": traceback.format_exc(limit=3)}
        if args.out:
            with open(args.out, "w") as fh:
                json.dump(results, fh, indent=2, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
