"""How adaptation changes robustness: an adapted model against the unadapted backbone.

``robustness_deltas`` runs the project's evaluation (``tasks/robustness/evaluate``: the
ImageNet-C style corruption suite and the registered attacks, FGSM/PGD by default) on the
adapted model and on the *unadapted* classifier of the same episode — the nearest-class-mean
prototype head on the frozen backbone — over the same query images, and returns both
summaries and adapted − unadapted per metric (positive = the adapted model is better). Both
models take the dataset's own images (the trunk resizes), so corruptions and ε act on those
pixels. ``mce_vs_baseline`` is the robustness module's Σ-error ratio (< 1: fewer corruption
errors than the unadapted model).

``attribute_deltas`` does the same for ImageNet-E style attribute edits (an ``edits:`` set,
whose few-shot task is the edit set's own originals): per attribute, each model's accuracy on
the edited images of the episode's query objects and its *drop* against the same objects'
originals; the deltas are adapted − unadapted, accuracy under ``attr:<attribute>`` (the same
sign as the attack/corruption deltas: positive = the adapted model is better) and drop under
``drop:<attribute>`` (positive = the adapted model loses *more* to the edit).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import nn

from trustflow.data.vision.datasets import ArrayDataset
from trustflow.tasks.fewshot.data import EditedQueries
from trustflow.tasks.robustness.evaluate import AttackSpec, evaluate_classifier, summary

ATTACKS: tuple[AttackSpec, ...] = (("clean", {}), ("fgsm", {"eps": 2 / 255}), ("pgd", {"eps": 2 / 255, "steps": 5}))
CORRUPTIONS = ("gaussian_noise", "defocus_blur", "fog", "contrast", "jpeg_compression")


def subset(data: ArrayDataset, idx: np.ndarray) -> ArrayDataset:
    return ArrayDataset(
        data.name,
        data.split,
        np.ascontiguousarray(data.x[idx]),
        data.y[idx].copy(),
        data.num_classes,
        data.mean,
        data.std,
        data.classes,
    )


def robustness_deltas(
    adapted: nn.Module,
    unadapted: nn.Module,
    queries: ArrayDataset,
    attacks: Sequence[AttackSpec | str] = ATTACKS,
    corruptions: Sequence[str] | str = CORRUPTIONS,
    severities: Sequence[int] = (3,),
    batch_size: int = 128,
    seed: int = 0,
    unadapted_rows: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """``{"adapted": summary, "unadapted": summary, "delta": {metric: adapted − unadapted},
    "mce_vs_baseline": float | None, "rows": [...]}`` over ``queries``. Pass ``unadapted_rows``
    (the ``rows`` of an earlier call whose model was "unadapted") to compare several adapted
    models with one evaluation of the unadapted one."""
    kw: dict[str, Any] = {
        "attacks": attacks,
        "corruptions": corruptions,
        "severities": severities,
        "batch_size": batch_size,
        "seed": seed,
    }
    base_rows = [r for r in unadapted_rows if r["model"] == "unadapted"] if unadapted_rows else None
    if not base_rows:
        base_rows = evaluate_classifier(unadapted, queries, model_name="unadapted", **kw)
    rows = evaluate_classifier(adapted, queries, model_name="adapted", **kw)
    mine, base = summary(rows, base_rows), summary(base_rows)
    delta: dict[str, float] = {}
    if mine["clean_accuracy"] is not None and base["clean_accuracy"] is not None:
        delta["clean"] = mine["clean_accuracy"] - base["clean_accuracy"]
    for key, acc in mine["robust_accuracy"].items():
        delta[key] = acc - base["robust_accuracy"][key]
    if mine["mean_corruption_accuracy"] is not None:
        delta["corruption"] = mine["mean_corruption_accuracy"] - base["mean_corruption_accuracy"]
    return {
        "adapted": mine,
        "unadapted": base,
        "delta": delta,
        "mce_vs_baseline": mine.get("mce_vs_baseline"),
        "rows": rows + base_rows,
    }


def _correct(model: nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 128) -> np.ndarray:
    import torch

    model.eval()
    with torch.no_grad():
        pred = [
            model(torch.from_numpy(np.ascontiguousarray(x[i : i + batch_size]))).argmax(1).numpy()
            for i in range(0, len(x), batch_size)
        ]
    return np.concatenate(pred) == y if pred else np.zeros(0, dtype=bool)


def attribute_accuracy(model: nn.Module, test: ArrayDataset, edits: EditedQueries, query: np.ndarray) -> dict[str, Any]:
    """Per attribute: accuracy on the edits of the ``query`` objects, on the same objects'
    originals (paired, with the edits' multiplicity), the drop between them, and the count."""
    keep = np.isin(edits.query, query)
    if not keep.any():
        return {}
    hit = _correct(model, edits.x[keep], edits.y[keep])
    orig = dict(zip(query.tolist(), _correct(model, test.x[query], test.y[query]).tolist(), strict=True))
    paired = np.array([orig[int(q)] for q in edits.query[keep]], dtype=bool)
    out: dict[str, Any] = {}
    for a in sorted(set(edits.attribute[keep].tolist())):
        m = edits.attribute[keep] == a
        acc, base = float(hit[m].mean()), float(paired[m].mean())
        out[a] = {"accuracy": acc, "original": base, "drop": base - acc, "images": int(m.sum())}
    return out


def attribute_deltas(
    adapted: nn.Module, unadapted: nn.Module, test: ArrayDataset, edits: EditedQueries, query: np.ndarray
) -> dict[str, Any]:
    """``{"adapted": …, "unadapted": …, "delta": {"attr:<a>": Δ accuracy, "drop:<a>": Δ drop}}``
    (adapted − unadapted) over the edits of the ``query`` objects."""
    mine = attribute_accuracy(adapted, test, edits, query)
    base = attribute_accuracy(unadapted, test, edits, query)
    delta: dict[str, float] = {}
    for a, r in mine.items():
        delta[f"attr:{a}"] = r["accuracy"] - base[a]["accuracy"]
        delta[f"drop:{a}"] = r["drop"] - base[a]["drop"]
    return {"adapted": mine, "unadapted": base, "delta": delta}


__all__ = ["ATTACKS", "CORRUPTIONS", "attribute_accuracy", "attribute_deltas", "robustness_deltas", "subset"]
