"""Matplotlib plumbing shared by every pipeline's plots: a headless row of panels and PNG bytes.

Plots go to the store as bytes (never to a file the worker owns), so each plot function builds a
figure, draws, and hands it to :func:`png_bytes`, which also closes it (figures left open pile up
in long-running Prefect workers)."""

from __future__ import annotations

import io
from typing import Any


def figure_row(n: int, width: float = 4.4, pad: float = 1.6, height: float = 3.6) -> tuple[Any, Any]:
    """A figure with ``n`` panels side by side (at least one) on the Agg backend: (fig, axes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, max(1, n), figsize=(width * max(1, n) + pad, height), squeeze=False)
    return fig, axes[0]


def png_bytes(fig: Any, tight: bool = False, dpi: int = 100) -> bytes:
    """The figure as PNG bytes; the figure is closed afterwards."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    if tight:
        fig.tight_layout()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


__all__ = ["figure_row", "png_bytes"]
