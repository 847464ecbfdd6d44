"""Verification and source tracing: the fingerprint score ρ between two models, two baselines,
and tracing over a pool (Ray fan-out, threshold calibrated on the pool, ROC/AUC).

ρ (arXiv 2505.01007 Sec. 4): match the suspect's filters to the source's, then ρ is the
fraction of (filter d, frequency (u, v) ∈ S′) pairs whose complex cosine
``Re(z̄₁·z₂)/(|z₁||z₂|)`` between the C-vectors ``F^(uv)_{W_d}`` is ≥ τ = 0.99.

Matching (the paper does not say how; our choice):

1. filters, invariant to channel order: each filter's descriptor is, per frequency, its
   channel magnitudes sorted, normalised; Hungarian assignment
   (``scipy.optimize.linear_sum_assignment``) on their cosine;
2. input channels (a permutation of the previous layer permutes them, and the complex
   cosine is over channels): Hungarian on the cosine of each channel's components over
   (matched filter, frequency);
3. filters again, on the mean complex cosine over S′ with the channels aligned (the
   brief's "Hungarian on mean cosine"), then channels again.

Scaling needs nothing: the cosine ignores a positive factor. Baselines: the cosine of all
shared conv/linear weights flattened (no matching: what a naive weight check does), and
linear CKA of the penultimate features on a probe batch.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from trustflow.errors import InputError
from trustflow.models.fingerprint.checkpoint import load_model
from trustflow.models.fingerprint.module import Fingerprint, Fingerprinted, extract_fingerprint
from trustflow.tasks.robustness.training.base import features_and_logits

TAU = 0.99
METHODS = ("fingerprint", "weight_cosine", "cka")


@dataclass(frozen=True)
class Match:
    """ρ and how it was reached."""

    rho: float
    filter_perm: np.ndarray  # suspect filter matched to source filter d
    channel_perm: np.ndarray  # suspect channel matched to source channel c
    mean_cosine: float
    reason: str = ""


def _unit(a: np.ndarray, axis: int) -> np.ndarray:
    return a / np.maximum(np.linalg.norm(a, axis=axis, keepdims=True), 1e-30)


def complex_cosine(z1: np.ndarray, z2: np.ndarray, axis: int = -1) -> np.ndarray:
    """``Re(Σ z̄₁ z₂) / (‖z₁‖ ‖z₂‖)`` along ``axis``."""
    num = np.real(np.sum(np.conj(z1) * z2, axis=axis))
    den = np.linalg.norm(z1, axis=axis) * np.linalg.norm(z2, axis=axis)
    return num / np.maximum(den, 1e-30)


def _assign(similarity: np.ndarray) -> np.ndarray:
    rows, cols = linear_sum_assignment(-similarity)
    perm = np.empty(similarity.shape[0], dtype=np.int64)
    perm[rows] = cols
    return perm


def _match_channels(a: np.ndarray, b: np.ndarray, fperm: np.ndarray) -> np.ndarray:
    """σ: source channel c ↔ suspect channel σ[c], given the filter matching."""
    bm = b[fperm]  # D, C, P aligned filters
    xa = _unit(a.transpose(1, 0, 2).reshape(a.shape[1], -1), 1)  # C, D·P
    xb = _unit(bm.transpose(1, 0, 2).reshape(b.shape[1], -1), 1)
    sim = np.real(np.conj(xa) @ xb.T)
    return _assign(sim)


def _match_filters_by_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ua, ub = _unit(a, 1), _unit(b, 1)  # per (d, p): unit C-vectors
    sim = np.einsum("dcp,ecp->de", np.conj(ua), ub).real / a.shape[2]  # mean complex cosine over S′
    return _assign(sim)


def fingerprint_score(source: Fingerprint, suspect: Fingerprint, tau: float = TAU) -> Match:
    """ρ of ``suspect`` against ``source`` (see the module docstring)."""
    a, b = source.values, suspect.values
    empty = np.zeros(0, dtype=np.int64)
    if a.shape != b.shape or not np.array_equal(source.freqs, suspect.freqs):
        return Match(0.0, empty, empty, 0.0, f"shapes differ: source {a.shape}, suspect {b.shape}")
    mag_a = _unit(np.sort(np.abs(a), axis=1).reshape(a.shape[0], -1), 1)
    mag_b = _unit(np.sort(np.abs(b), axis=1).reshape(b.shape[0], -1), 1)
    fperm = _assign(mag_a @ mag_b.T)
    cperm = _match_channels(a, b, fperm)
    for _ in range(2):
        fperm = _match_filters_by_cosine(a, b[:, cperm])
        cperm = _match_channels(a, b, fperm)
    aligned = b[fperm][:, cperm]
    cos = complex_cosine(a, aligned, axis=1)  # D, P
    return Match(float(np.mean(cos >= tau)), fperm, cperm, float(np.mean(cos)))


def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """Conv/linear weights by a name independent of the fingerprint wrapper (module excluded)."""
    out: dict[str, torch.Tensor] = {}
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)) and not isinstance(m, Fingerprinted):
            out[name.replace(".layer", "")] = m.weight.detach()
    return out


def weight_cosine(a: nn.Module, b: nn.Module) -> float:
    """Cosine of the concatenated conv/linear weights the two models share by name and shape."""
    wa, wb = _weights(a), _weights(b)
    keys = [k for k in wa if k in wb and wa[k].shape == wb[k].shape]
    if not keys:
        return 0.0
    va = torch.cat([wa[k].flatten() for k in keys]).double()
    vb = torch.cat([wb[k].flatten() for k in keys]).double()
    return float(torch.dot(va, vb) / (va.norm() * vb.norm()).clamp_min(1e-30))


@torch.no_grad()
def penultimate(model: nn.Module, probe: torch.Tensor) -> torch.Tensor:
    model.eval()
    features, _ = features_and_logits(model, probe)
    return features.flatten(1).double()


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA (Kornblith et al. 2019) of two (n, features) matrices."""
    x = x - x.mean(0, keepdim=True)
    y = y - y.mean(0, keepdim=True)
    num = (y.T @ x).norm() ** 2
    den = (x.T @ x).norm() * (y.T @ y).norm()
    return float(num / den.clamp_min(1e-30))


@dataclass
class Loaded:
    """A model with what the scores need, computed once."""

    name: str
    model: nn.Module
    fingerprint: Fingerprint | None
    features: torch.Tensor


def prepare(name: str, model: nn.Module, probe: torch.Tensor, reference: Fingerprint | None = None) -> Loaded:
    """Extract a model's fingerprint (read at ``reference``'s layer/grid when it has no module)
    and its probe features."""
    fp: Fingerprint | None
    try:
        fp = extract_fingerprint(
            model,
            reference.layer if reference else None,
            reference.grid if reference else None,
            reference.selection if reference else None,
        )
    except InputError:
        fp = None
    return Loaded(name, model, fp, penultimate(model, probe))


def scores(source: Loaded, suspect: Loaded) -> dict[str, float]:
    """The three scores of ``suspect`` against ``source``."""
    rho = 0.0
    if source.fingerprint is not None and suspect.fingerprint is not None:
        rho = fingerprint_score(source.fingerprint, suspect.fingerprint).rho
    return {
        "fingerprint": rho,
        "weight_cosine": weight_cosine(source.model, suspect.model),
        "cka": linear_cka(source.features, suspect.features),
    }


def score_suspect(suspect_path: str, source_paths: Sequence[str], probe: np.ndarray) -> list[dict[str, Any]]:
    """One Ray task of the tracing fan-out: every score of one suspect against every source."""
    torch.set_num_threads(1)
    x = torch.from_numpy(np.array(probe, dtype=np.float32))  # a Ray argument is read-only
    sources = [prepare(Path(p).stem, load_model(p), x) for p in source_paths]
    model = load_model(suspect_path)
    rows = []
    for src in sources:
        sus = prepare(Path(suspect_path).stem, model, x, src.fingerprint)
        rows.append({"source": src.name, "suspect": sus.name, **scores(src, sus)})
    return rows


def score_pool(
    source_paths: Sequence[str], suspect_paths: Sequence[str], probe: np.ndarray, use_ray: bool = True
) -> tuple[list[dict[str, Any]], float]:
    """Scores of every suspect against every source (rows), and the wall time in seconds.

    With ``use_ray`` one Ray task per suspect (``tasks/ray_parts.ray_map``); otherwise the
    same function in this process."""
    t0 = time.perf_counter()
    calls = [(str(s), [str(p) for p in source_paths], probe) for s in suspect_paths]
    if use_ray:
        from trustflow.tasks.ray_parts import ray_map

        results = ray_map(score_suspect, calls, "fingerprint trace")
    else:
        threads = torch.get_num_threads()
        try:
            results = [score_suspect(*c) for c in calls]
        finally:
            torch.set_num_threads(threads)
    return [r for rows in results for r in rows], time.perf_counter() - t0


@dataclass(frozen=True)
class TraceResult:
    """Tracing over a pool for one method."""

    method: str
    threshold: float
    accuracy: float  # over all suspects, at the calibrated threshold
    auc: float  # pairs (source, suspect) labelled "derived from this source"
    fpr: list[float]
    tpr: list[float]
    per_group: dict[str, float]  # accuracy per suspect group (attack name, "independent", ...)


def trace(
    rows: Sequence[dict[str, Any]], truth: dict[str, str | None], groups: dict[str, str], method: str
) -> TraceResult:
    """Calibrate and score tracing for ``method``.

    ``truth`` maps each suspect to its true source (None for an independent model);
    ``groups`` maps it to a group name for per-group accuracy. A suspect is traced to the
    source with the highest score when that score exceeds the threshold, else to none;
    the threshold is the one (among midpoints of observed scores) that maximises tracing
    accuracy on the pool, as in the paper."""
    from sklearn.metrics import roc_auc_score, roc_curve

    best: dict[str, tuple[str, float]] = {}
    labels, values = [], []
    for r in rows:
        s, v = r["suspect"], float(r[method])
        labels.append(int(truth.get(s) == r["source"]))
        values.append(v)
        if s not in best or v > best[s][1]:
            best[s] = (r["source"], v)
    suspects = sorted(best)

    def accuracy_at(t: float) -> tuple[float, dict[str, list[int]]]:
        per: dict[str, list[int]] = {}
        hits = 0
        for s in suspects:
            src, v = best[s]
            predicted = src if v > t else None
            ok = int(predicted == truth.get(s))
            hits += ok
            per.setdefault(groups.get(s, "?"), []).append(ok)
        return hits / max(1, len(suspects)), per

    cands = sorted({v for _, v in best.values()})
    thresholds = [cands[0] - 1e-9] + [(a + b) / 2 for a, b in zip(cands, cands[1:], strict=False)] + [cands[-1]]
    scored = [(accuracy_at(t)[0], t) for t in thresholds]
    acc, threshold = max(scored, key=lambda p: (p[0], -abs(p[1] - 0.5)))
    _, per = accuracy_at(threshold)
    auc = float(roc_auc_score(labels, values)) if 0 < sum(labels) < len(labels) else float("nan")
    fpr, tpr, _ = roc_curve(labels, values) if 0 < sum(labels) < len(labels) else ([], [], [])
    return TraceResult(
        method,
        float(threshold),
        float(acc),
        auc,
        [float(v) for v in fpr],
        [float(v) for v in tpr],
        {g: sum(v) / len(v) for g, v in per.items()},
    )


__all__ = [
    "METHODS",
    "TAU",
    "Loaded",
    "Match",
    "TraceResult",
    "complex_cosine",
    "fingerprint_score",
    "linear_cka",
    "penultimate",
    "prepare",
    "score_pool",
    "score_suspect",
    "scores",
    "trace",
    "weight_cosine",
]
