"""Plots of the robust vision pipeline (PNG bytes, written next to a run's stages)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from trustflow.tasks.plotting import png_bytes

ACCURACY_PER_EPOCH = "accuracy_per_epoch.png"


def accuracy_per_epoch(rows: Sequence[Mapping[str, Any]], method: str) -> bytes:
    """Clean, FGSM and PGD-10 probe accuracy per epoch; red dashes mark catastrophic overfitting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    epochs = [r["epoch"] for r in rows]
    for key, label in (("probe_clean_acc", "clean"), ("fgsm_acc", "FGSM"), ("pgd_acc", "PGD-10")):
        ax.plot(epochs, [r[key] for r in rows], marker="o", label=label)
    for r in rows:
        if r["co"]:
            ax.axvline(r["epoch"], color="red", linestyle="--", alpha=0.6)
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (held-out probe)")
    ax.set_title(f"{method}: accuracy per epoch (red: catastrophic overfitting)")
    ax.legend()
    return png_bytes(fig, tight=True)
