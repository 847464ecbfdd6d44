"""PNG plots of a detector robustness run: ID vs OOD mAP with the trend line, AP per domain."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from trustflow.tasks.plotting import png_bytes


def id_vs_ood_png(board: Sequence[Mapping[str, Any]]) -> bytes:
    """Scatter of (ID mAP, OOD mAP) per detector; the dashed line is OOD = a + b·ID.

    Points above the line are more robust than the trend predicts (positive effective
    robustness), which is the question COCO-O asks of a detector."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    top = max([0.05] + [max(r["id_map"], r["ood_map"]) for r in board]) * 1.15
    if board:
        a, b = board[0]["trend_a"], board[0]["trend_b"]
        ax.plot(
            [0, top],
            [a, a + b * top],
            "--",
            color="grey",
            label=f"trend OOD = {a:.3f} + {b:.3f}·ID ({board[0]['trend']})",
        )
    ax.plot([0, top], [0, top], ":", color="lightgrey", label="no drop")
    for r in board:
        ax.scatter(r["id_map"], r["ood_map"], s=40)
        ax.annotate(
            f"{r['detector']}\nER {r['effective_robustness']:+.3f}",
            (r["id_map"], r["ood_map"]),
            fontsize=7,
            xytext=(4, 4),
            textcoords="offset points",
        )
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("in-distribution mAP (AP@[.50:.95])")
    ax.set_ylabel("OOD mAP (mean over shifted domains)")
    ax.legend(fontsize=7, loc="upper left")
    return png_bytes(fig, tight=True)


def per_domain_png(metrics: Sequence[Mapping[str, Any]], id_domain: str) -> bytes:
    """Grouped bars: AP per domain (in-distribution first), one bar per detector."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    detectors = sorted({str(m["detector"]) for m in metrics})
    domains = sorted({str(m["domain"]) for m in metrics}, key=lambda d: (d != id_domain, d))
    ap = {(str(m["detector"]), str(m["domain"])): max(0.0, float(m["AP"])) for m in metrics}
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(domains) * max(1, len(detectors)) / 1.5), 4))
    width = 0.8 / max(1, len(detectors))
    x = np.arange(len(domains))
    for i, det in enumerate(detectors):
        ax.bar(x + i * width, [ap.get((det, d), 0.0) for d in domains], width, label=det)
    ax.set_xticks(x + width * (len(detectors) - 1) / 2)
    ax.set_xticklabels([f"{d}\n(ID)" if d == id_domain else d for d in domains], fontsize=8)
    ax.set_ylabel("AP@[.50:.95]")
    ax.legend(fontsize=7)
    return png_bytes(fig, tight=True)
