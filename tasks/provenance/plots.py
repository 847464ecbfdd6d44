"""Plots of the provenance pipeline (PNG bytes, written next to a trace run's stages)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from trustflow.tasks.plotting import png_bytes

RHO_VS_LR = "rho_vs_lr.png"


def rho_vs_lr_points(
    descendants: Sequence[Mapping[str, Any]], scores: Sequence[Mapping[str, Any]]
) -> dict[str, list[tuple[float, float]]]:
    """Attack name → sorted (fine-tuning lr, ρ against the true source) of its descendants.

    Only attacks that fine-tune (an ``lr`` option) are placed; ρ is the ``ours`` score of the
    descendant against the source it was made from."""
    from trustflow.tasks.provenance.attacks.base import OWNERSHIP_ATTACKS

    rho = {(r["suspect"], r["source"]): float(r["score"]) for r in scores if r["method"] == "ours"}
    out: dict[str, list[tuple[float, float]]] = {}
    for d in descendants:
        entry, options = OWNERSHIP_ATTACKS.resolve(d["attack"])
        lr = getattr(options, "lr", None)
        key = (d.get("ref", d["suspect"]), d["source"])
        if lr is None or key not in rho:
            continue
        out.setdefault(entry.name, []).append((float(lr), rho[key]))
    return {k: sorted(v) for k, v in sorted(out.items())}


def rho_vs_lr(points: Mapping[str, Sequence[tuple[float, float]]]) -> bytes:
    """ρ against the true source vs the attack's fine-tuning learning rate, one line per attack
    (mean over sources and seeds at each lr, every descendant as a dot)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, pts in points.items():
        lrs = sorted({lr for lr, _ in pts})
        means = [sum(r for x, r in pts if x == lr) / sum(1 for x, _ in pts if x == lr) for lr in lrs]
        (line,) = ax.plot(lrs, means, marker="o", label=name)
        ax.scatter([lr for lr, _ in pts], [r for _, r in pts], color=line.get_color(), alpha=0.35, s=12)
    ax.set_xscale("log")
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("fine-tuning learning rate")
    ax.set_ylabel("ρ vs the true source")
    ax.set_title("Fingerprint score after fine-tuning attacks")
    if points:
        ax.legend()
    return png_bytes(fig, tight=True)
