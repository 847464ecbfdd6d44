"""ρ, its matching, the baselines, tracing calibration and the fingerprint table."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import torch

from trustflow.data.schemas import FINGERPRINT
from trustflow.models.fingerprint.module import Fingerprint, fingerprint_rows
from trustflow.models.fingerprint.transform import invariant_components
from trustflow.tasks.provenance.verify import complex_cosine, fingerprint_score, linear_cka, trace


def _fp(weight: torch.Tensor) -> Fingerprint:
    freqs, comps = invariant_components(weight, (12, 12))
    return Fingerprint("net.3", (12, 12), freqs.numpy(), comps.numpy(), "module")


def test_rho_is_one_under_filter_and_channel_permutation_and_scaling_and_zero_for_unrelated() -> None:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(16, 8, 3, 3, generator=g, dtype=torch.float64)
    fp = _fp(w)
    moved = w[torch.randperm(16, generator=g)][:, torch.randperm(8, generator=g)] * 7.5
    assert fingerprint_score(fp, _fp(moved)).rho == 1.0
    assert fingerprint_score(fp, _fp(torch.randn(16, 8, 3, 3, generator=g, dtype=torch.float64))).rho < 0.02
    noisy = w + 0.3 * w.std() * torch.randn(w.shape, generator=g, dtype=torch.float64)
    assert 0.0 <= fingerprint_score(fp, _fp(noisy)).rho < 1.0
    other_shape = _fp(torch.randn(8, 8, 3, 3, generator=g, dtype=torch.float64))
    match = fingerprint_score(fp, other_shape)
    assert match.rho == 0.0 and "differ" in match.reason


def test_complex_cosine_and_cka() -> None:
    z = np.array([1 + 1j, 2 - 1j])
    assert np.isclose(complex_cosine(z, 3 * z), 1.0)
    assert np.isclose(complex_cosine(z, 1j * z), 0.0)  # a phase turn is not the same component
    x = torch.randn(50, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(6, 6, dtype=torch.float64))
    assert abs(linear_cka(x, 4 * x @ q) - 1.0) < 1e-9


def test_trace_calibrates_the_threshold_on_the_pool() -> None:
    rows = [
        {"source": "A", "suspect": "a1", "fingerprint": 0.9},
        {"source": "B", "suspect": "a1", "fingerprint": 0.1},
        {"source": "A", "suspect": "b1", "fingerprint": 0.2},
        {"source": "B", "suspect": "b1", "fingerprint": 0.8},
        {"source": "A", "suspect": "i1", "fingerprint": 0.3},
        {"source": "B", "suspect": "i1", "fingerprint": 0.25},
    ]
    res = trace(rows, {"a1": "A", "b1": "B", "i1": None}, {"a1": "x", "b1": "x", "i1": "independent"}, "fingerprint")
    assert res.accuracy == 1.0 and 0.3 <= res.threshold < 0.8
    assert res.auc == 1.0 and res.per_group == {"x": 1.0, "independent": 1.0}


def test_fingerprint_rows_fit_the_schema() -> None:
    fp = _fp(torch.randn(4, 3, 3, 3, dtype=torch.float64))
    table = pa.table(fingerprint_rows("src-0", fp), schema=FINGERPRINT.schema)
    assert table.num_rows == 4 * 3 * fp.freqs.shape[0]
    first = table.slice(0, 1).to_pylist()[0]
    assert complex(first["real"], first["imag"]) == fp.values[0, 0, 0]
