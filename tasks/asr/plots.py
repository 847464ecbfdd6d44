"""Plot of an ASR evaluation (PNG bytes, written beside the leaderboard)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any


def wer_by_domain(board: Sequence[Mapping[str, Any]]) -> bytes:
    """WER (%) per domain, one bar per model (labelled by method), 95 % intervals as error bars;
    in-domain domains left, out-of-domain ones and their mean right. Lower is better."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from trustflow.tasks.asr.stages import pivot

    domains, rows = pivot(board)
    cells = {(b["model"], b["domain"]): b for b in board}
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(domains) + 2), 3.8))
    width = 0.8 / max(1, len(rows))
    x = np.arange(len(domains))
    for i, r in enumerate(rows):
        vals, lo, hi = [], [], []
        for d in domains:
            c = cells.get((r["model"], d), {})
            v = c.get("wer")
            vals.append(100 * v if v is not None else np.nan)
            lo.append(100 * (v - c["wer_lo"]) if v is not None and c.get("wer_lo") is not None else 0.0)
            hi.append(100 * (c["wer_hi"] - v) if v is not None and c.get("wer_hi") is not None else 0.0)
        ax.bar(x + i * width, vals, width, yerr=[lo, hi], capsize=2, label=f"{r['method']} ({r['model'][-6:]})")
    ax.set_xticks(x + width * (len(rows) - 1) / 2, domains, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("WER (%)")
    ax.set_title("WER per domain")
    ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()
