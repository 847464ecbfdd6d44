"""Accuracy per (model, attribute, level) and the drop vs the original, with paired bootstrap.

Pure numpy over prediction rows (schema ``attribute_predictions``), so the leaderboard is
one function of the stage and tests can feed it hand-made rows.

Why pairing by object: an edit level's accuracy differs from the original's both because of
the edit and because different objects may be present (an editor may skip an object it
cannot edit). The drop is therefore computed on the objects that have both the edit and an
original, object by object, and its 95 % interval comes from resampling *objects* (with
replacement, the original and the edit of an object together). An object with several
images at one level (several seeds) counts once: its hits are averaged first.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

ORIGINAL = "original"
ALL_LEVELS = "all"
BOOTSTRAP = 1000
CONFIDENCE = 0.95


def level_order(levels: Iterable[str]) -> list[str]:
    """Levels in report order: numbers ascending (``0.1 < 0.2 < 1``), then the others in
    first-seen order (``flat, gradient, texture, clutter`` keep their editor order)."""
    seen = list(dict.fromkeys(levels))

    def number(text: str) -> float | None:
        try:
            return float(text)
        except ValueError:
            return None

    numeric = sorted((lv for lv in seen if number(lv) is not None), key=lambda lv: float(lv))
    return numeric + [lv for lv in seen if number(lv) is None and lv != ALL_LEVELS]


def paired_bootstrap(
    original: np.ndarray, edited: np.ndarray, n_boot: int = BOOTSTRAP, seed: int = 0
) -> tuple[float, float, float]:
    """(mean drop, low, high): ``original - edited`` per object, objects resampled with
    replacement ``n_boot`` times; the percentile interval at 95 %."""
    original = np.asarray(original, dtype=np.float64)
    edited = np.asarray(edited, dtype=np.float64)
    if original.shape != edited.shape or original.ndim != 1:
        raise ValueError(f"paired arrays must be 1-D and equal in length, got {original.shape} and {edited.shape}")
    diff = original - edited
    if diff.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, diff.size, size=(int(n_boot), diff.size))
    means = diff[idx].mean(axis=1)
    tail = (1.0 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(diff.mean()), float(low), float(high)


def _per_object(rows: Sequence[Mapping[str, Any]], key: str) -> dict[str, float]:
    """object_id → mean of ``key``: first over an object's images at one level (several seeds
    count once), then over its levels (so pooling levels weighs each level equally)."""
    cells: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in rows:
        if r.get(key) is not None:
            cells[(r["object_id"], r["level"])].append(float(r[key]))
    per_level: dict[str, list[float]] = defaultdict(list)
    for (obj, _), values in cells.items():
        per_level[obj].append(float(np.mean(values)))
    return {o: float(np.mean(v)) for o, v in per_level.items()}


def leaderboard(
    rows: Sequence[Mapping[str, Any]], skipped: Mapping[str, int] | None = None, n_boot: int = BOOTSTRAP, seed: int = 0
) -> list[dict[str, Any]]:
    """Leaderboard rows (schema ``attribute_leaderboard``) from prediction rows.

    One row per (model, attribute, level), plus ``level="all"`` per edited attribute (each
    object's hits averaged over the attribute's levels, then paired with its original), and
    the ``original`` row itself (drop 0). ``skipped`` counts, per model, the images left out
    because their label is unmapped."""
    by_model: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in rows:
        by_model[r["model"]].append(r)
    out: list[dict[str, Any]] = []
    for model in sorted(by_model):
        mine = by_model[model]
        orig_rows = [r for r in mine if r["attribute"] == ORIGINAL]
        orig1, orig5 = _per_object(orig_rows, "hit1"), _per_object(orig_rows, "hit5")
        groups: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
        for r in mine:
            groups[(r["attribute"], r["level"])].append(r)
        attributes = [ORIGINAL] + sorted({a for a, _ in groups if a != ORIGINAL})
        for attribute in attributes:
            levels = level_order(lv for a, lv in groups if a == attribute)
            if attribute != ORIGINAL and len(levels) > 1:
                levels.append(ALL_LEVELS)
            for level in levels:
                group = (
                    [r for (a, _), g in groups.items() if a == attribute for r in g]
                    if level == ALL_LEVELS
                    else groups[(attribute, level)]
                )
                out.append(
                    _row(model, attribute, level, group, orig1, orig5, (skipped or {}).get(model, 0), n_boot, seed)
                )
    return out


def _row(
    model: str,
    attribute: str,
    level: str,
    group: Sequence[Mapping[str, Any]],
    orig1: Mapping[str, float],
    orig5: Mapping[str, float],
    skipped: int,
    n_boot: int,
    seed: int,
) -> dict[str, Any]:
    hit1, hit5 = _per_object(group, "hit1"), _per_object(group, "hit5")
    paired = sorted(o for o in hit1 if o in orig1)
    e1 = np.array([hit1[o] for o in paired])
    o1 = np.array([orig1[o] for o in paired])
    drop, low, high = paired_bootstrap(o1, e1, n_boot, seed) if paired else (float("nan"),) * 3
    has5 = bool(hit5) and all(o in orig5 for o in paired) and all(o in hit5 for o in paired)
    values = [float(r["value"]) for r in group if r.get("value") is not None]
    return {
        "row_key": f"{model}|{attribute}|{level}",
        "model": model,
        "attribute": attribute,
        "level": level,
        "value_mean": float(np.mean(values)) if values else None,
        "objects": len(paired),
        "images": len(group),
        "top1": float(e1.mean()) if paired else float("nan"),
        "top5": float(np.mean([hit5[o] for o in paired])) if has5 and paired else None,
        "top1_original": float(o1.mean()) if paired else float("nan"),
        "drop_top1": drop,
        "drop_low": low,
        "drop_high": high,
        "drop_top5": float(np.mean([orig5[o] - hit5[o] for o in paired])) if has5 and paired else None,
        "skipped": int(skipped),
    }


def mean_drops(board: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """model → attribute → pooled top-1 drop (the ``all`` rows, or the single level's)."""
    out: dict[str, dict[str, float]] = defaultdict(dict)
    levels: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for r in board:
        if r["attribute"] != ORIGINAL:
            levels[(r["model"], r["attribute"])].append(r)
    for (model, attribute), rs in levels.items():
        pooled = [r for r in rs if r["level"] == ALL_LEVELS] or rs
        out[model][attribute] = float(pooled[0]["drop_top1"])
    return dict(out)


__all__ = ["ALL_LEVELS", "ORIGINAL", "leaderboard", "level_order", "mean_drops", "paired_bootstrap"]
