"""Robust accuracy of an image classifier: adversarial attacks and common corruptions.

Pure torch/numpy, one process: the Ray tasks and the Prefect flow wrap this function.

``evaluate_classifier`` returns one row per (attack, ε) and per (corruption, severity):

    model, dataset, attack, norm, eps, corruption, severity, n, correct, accuracy, seconds

Attack rows have ``corruption``/``severity`` None; corruption rows have ``attack``,
``norm``, ``eps`` None. The clean row is the attack ``clean`` (norm None, eps 0.0).
``summary(rows)`` condenses them (robust accuracy keyed by :func:`attack_key`; reports show
:func:`attack_label`): clean accuracy, robust accuracy per attack, accuracy per
corruption, mCE (AlexNet reference) and, given a baseline's rows from the same run, the
baseline-normalised mCE and relative mCE.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from trustflow.data.vision.datasets import ArrayDataset
from trustflow.errors import ConfigError
from trustflow.tasks.robustness.attacks import build_attack
from trustflow.tasks.robustness.corruptions import SEVERITIES, check_severity, corrupt, corruption_names
from trustflow.tasks.robustness.mce import ALEXNET_ERRORS, mce, relative_mce

ROW_COLUMNS = (
    "model",
    "dataset",
    "attack",
    "norm",
    "eps",
    "corruption",
    "severity",
    "n",
    "correct",
    "accuracy",
    "seconds",
)
AttackSpec = tuple[str, Mapping[str, Any]]


def _expand_attacks(attacks: Iterable[AttackSpec | str]) -> list[tuple[str, dict[str, Any]]]:
    """``("pgd", {"eps": [2/255, 8/255]})`` → one entry per ε; a bare spec (``"pgd?eps=0.1"``)
    means no further options."""
    out: list[tuple[str, dict[str, Any]]] = []
    for item in attacks:
        name, config = (item, {}) if isinstance(item, str) else (item[0], dict(item[1] or {}))
        eps = config.get("eps")
        if isinstance(eps, (list, tuple)):
            out.extend((name, {**config, "eps": e}) for e in eps)
        else:
            out.append((name, config))
    return out


def _model_device(model: torch.nn.Module) -> torch.device:
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")


def evaluate_classifier(
    model: torch.nn.Module,
    dataset: ArrayDataset,
    attacks: Sequence[AttackSpec | str] = (("clean", {}),),
    corruptions: Sequence[str] | str = (),
    severities: Sequence[int] = SEVERITIES,
    batch_size: int = 128,
    seed: int = 0,
    model_name: str | None = None,
    device: str | torch.device | None = None,
) -> list[dict[str, Any]]:
    """Accuracy of ``model`` on ``dataset`` under each attack and each corruption × severity.

    ``attacks`` are ``(spec, options)`` pairs or bare specs of ``EVAL_ATTACKS`` (an ``eps`` list gives one
    row per ε); ``corruptions`` is a list of ``CORRUPTIONS`` names or ``"all"``. Every attack
    row uses a CPU generator seeded with ``seed``, and corruptions are seeded per image, so
    rows do not depend on order or batch size. The model runs in eval mode (its previous mode
    is restored)."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    plan = [build_attack(spec, config) for spec, config in _expand_attacks(attacks)]  # validate up front
    names = corruption_names(corruptions) if corruptions else []
    sev = [check_severity(s) for s in severities] if names else []
    if device is not None:
        model = model.to(device)
    dev = _model_device(model)
    label = model_name or getattr(model, "arch", None) or type(model).__name__
    base = {"model": str(label), "dataset": dataset.name}
    n = len(dataset)
    was_training = model.training
    model.eval()
    rows: list[dict[str, Any]] = []
    try:
        for attack in plan:
            generator = torch.Generator(device="cpu").manual_seed(int(seed))
            t0 = time.perf_counter()
            correct = 0
            for start in range(0, n, batch_size):
                xb = torch.from_numpy(dataset.x[start : start + batch_size]).to(dev)
                yb = torch.from_numpy(dataset.y[start : start + batch_size]).to(dev)
                x_adv = attack(model, xb, yb, generator)
                with torch.no_grad():
                    correct += int((model(x_adv).argmax(1) == yb).sum())
            rows.append(
                {
                    **base,
                    "attack": attack.name,
                    "norm": attack.norm,
                    "eps": attack.eps if attack.name != "clean" else 0.0,
                    "corruption": None,
                    "severity": None,
                    "n": n,
                    "correct": correct,
                    "accuracy": correct / n if n else float("nan"),
                    "seconds": time.perf_counter() - t0,
                }
            )
        for corruption in names:
            for severity in sev:
                t0 = time.perf_counter()
                correct = 0
                for start in range(0, n, batch_size):
                    xc = corrupt(
                        dataset.x[start : start + batch_size], corruption, severity, seed=seed, start_index=start
                    )
                    yb = torch.from_numpy(dataset.y[start : start + batch_size]).to(dev)
                    with torch.no_grad():
                        correct += int((model(torch.from_numpy(xc).to(dev)).argmax(1) == yb).sum())
                rows.append(
                    {
                        **base,
                        "attack": None,
                        "norm": None,
                        "eps": None,
                        "corruption": corruption,
                        "severity": severity,
                        "n": n,
                        "correct": correct,
                        "accuracy": correct / n if n else float("nan"),
                        "seconds": time.perf_counter() - t0,
                    }
                )
    finally:
        model.train(was_training)
    return rows


def format_eps(value: float) -> str:
    """Budgets read as people write them: ``8/255`` rather than ``0.031372…``."""
    k = float(value) * 255
    if k > 0 and abs(k - round(k)) < 1e-6:
        return f"{round(k)}/255"
    return f"{float(value):.4g}"


def attack_key(row: Mapping[str, Any]) -> str:
    """The key of an attack row in ``summary()["robust_accuracy"]``: ``pgd linf eps=0.03137``.

    Stable on purpose: continuous evaluation stores these keys as metric names."""
    if row["attack"] == "clean":
        return "clean"
    return f"{row['attack']} {row['norm']} eps={row['eps']:.4g}"


def attack_label(row: Mapping[str, Any]) -> str:
    """The same attack for people (reports, tables): ``pgd linf ε=8/255``."""
    if row["attack"] == "clean":
        return "clean"
    parts = [row["attack"], row.get("norm") or "", f"ε={format_eps(row['eps'])}" if row.get("eps") is not None else ""]
    return " ".join(p for p in parts if p)


def attack_order(row: Mapping[str, Any]) -> tuple[bool, str, float]:
    """Sort key of attack rows: clean first, then by attack name and budget."""
    return (row["attack"] != "clean", str(row["attack"]), float(row.get("eps") or 0.0))


def _corruption_error_table(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[int, float]]:
    table: dict[str, dict[int, float]] = {}
    for row in rows:
        if row.get("corruption"):
            table.setdefault(row["corruption"], {})[int(row["severity"])] = 1.0 - float(row["accuracy"])
    return table


def _one_group(rows: Sequence[Mapping[str, Any]], what: str) -> tuple[str, str]:
    groups = sorted({(r["model"], r["dataset"]) for r in rows})
    if len(groups) != 1:
        raise ConfigError(f"summary() takes the rows of one model on one dataset; {what} has {groups or 'none'}")
    return groups[0]


def summary(
    rows: Sequence[Mapping[str, Any]], baseline_rows: Sequence[Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """Condense one model's rows on one dataset.

    Keys: model, dataset, clean_accuracy, robust_accuracy ({"pgd linf eps=0.03137": acc}),
    corruption_accuracy (per corruption, mean over severities), mean_corruption_accuracy,
    mce (AlexNet-normalised; meaningful for ImageNet-C only, None unless every corruption
    has a reference), and with ``baseline_rows`` (another model, same run and dataset)
    mce_vs_baseline (Σ_s E / Σ_s E_baseline, averaged) and relative_mce (None when the
    baseline does not degrade under some corruption)."""
    model, dataset = _one_group(rows, "rows")
    clean = [r for r in rows if r.get("attack") == "clean"]
    clean_acc = float(clean[0]["accuracy"]) if clean else None
    robust = {attack_key(r): float(r["accuracy"]) for r in rows if r.get("attack") not in (None, "clean", "corruption")}
    errors = _corruption_error_table(rows)
    corr_acc = {c: 1.0 - float(np.mean(list(per.values()))) for c, per in errors.items()}
    out: dict[str, Any] = {
        "model": model,
        "dataset": dataset,
        "clean_accuracy": clean_acc,
        "robust_accuracy": robust,
        "corruption_accuracy": corr_acc,
        "mean_corruption_accuracy": float(np.mean(list(corr_acc.values()))) if corr_acc else None,
        "mce": mce(errors) if errors and all(c in ALEXNET_ERRORS for c in errors) else None,
    }
    if baseline_rows is not None:
        _, base_dataset = _one_group(baseline_rows, "baseline_rows")
        if base_dataset != dataset:
            raise ConfigError(f"baseline rows are on {base_dataset!r}, the model's on {dataset!r}")
        base_errors = _corruption_error_table(baseline_rows)
        missing = sorted(set(errors) - set(base_errors))
        if missing:
            raise ConfigError(f"baseline rows lack corruptions {', '.join(missing)}")
        base_mean = {
            c: float(np.mean([base_errors[c][s] for s in per if s in base_errors[c]] or [np.nan]))
            for c, per in errors.items()
        }
        mine = {c: {s: e for s, e in per.items() if s in base_errors[c]} for c, per in errors.items()}
        try:
            out["mce_vs_baseline"] = mce(mine, base_mean) if errors else None
        except ConfigError:  # the baseline makes no error under some corruption
            out["mce_vs_baseline"] = None
        base_clean = [r for r in baseline_rows if r.get("attack") == "clean"]
        out["relative_mce"] = None
        if errors and clean_acc is not None and base_clean:
            try:
                out["relative_mce"] = relative_mce(
                    errors, 1.0 - clean_acc, base_errors, 1.0 - float(base_clean[0]["accuracy"])
                )
            except ConfigError:
                out["relative_mce"] = None
    return out


__all__ = ["ROW_COLUMNS", "attack_key", "attack_label", "attack_order", "evaluate_classifier", "format_eps", "summary"]
