"""The frequency transform of conv filters and the properties the fingerprint rests on
(arXiv 2505.01007 Thm 3.1, Cor 3.3, Prop 3.4, Thm 3.5-3.6), checked on random tensors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from trustflow.errors import ConfigError
from trustflow.models.fingerprint.transform import (
    conv_output_spectrum,
    filter_spectrum,
    invariant_axis,
    invariant_components,
    invariant_frequencies,
    low_pass,
    low_pass_mask,
)


def _conv_circular(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, p: int) -> torch.Tensor:
    return F.conv2d(F.pad(x, (p, p, p, p), mode="circular") if p else x, w, b)


@pytest.mark.parametrize(("k", "m", "n"), [(3, 12, 12), (3, 28, 20), (5, 16, 13)])
def test_conv_in_frequency_identity(k: int, m: int, n: int) -> None:
    g = torch.Generator().manual_seed(k * m + n)
    x = torch.randn(2, 4, m, n, generator=g, dtype=torch.float64)
    w = torch.randn(6, 4, k, k, generator=g, dtype=torch.float64)
    b = torch.randn(6, generator=g, dtype=torch.float64)
    for p in (0, k // 2):  # tap-0 origin (the paper's) and PyTorch's "same" padding
        if p == 0:  # no padding: the circular conv of the paper is the wrap-around sum
            xx = torch.cat([x, x[..., : k - 1, :]], dim=-2)
            xx = torch.cat([xx, xx[..., : k - 1]], dim=-1)
            y = F.conv2d(xx, w, b)
        else:
            y = _conv_circular(x, w, b, p)
        assert y.shape[-2:] == (m, n)
        want = torch.fft.fft2(y)
        got = conv_output_spectrum(w, x, b, padding=p)
        rel = (got - want).abs().max() / want.abs().max()
        assert rel < 1e-5, rel


def test_identity_holds_in_float32_too() -> None:
    g = torch.Generator().manual_seed(1)
    x, w = torch.randn(1, 3, 14, 14, generator=g), torch.randn(5, 3, 3, 3, generator=g)
    y = _conv_circular(x, w, None, 1)
    want = torch.fft.fft2(y.double())
    rel = (conv_output_spectrum(w, x, None, padding=1) - want).abs().max() / want.abs().max()
    assert rel < 1e-5


def test_scaling_and_permutation_equivariance() -> None:
    g = torch.Generator().manual_seed(2)
    w = torch.randn(8, 3, 3, 3, generator=g, dtype=torch.float64)
    f = filter_spectrum(w, (10, 12))
    for a in (0.1, 10.0, 100.0):
        assert torch.allclose(filter_spectrum(a * w, (10, 12)), a * f, rtol=1e-6, atol=1e-9)
    perm = torch.randperm(8, generator=g)
    assert torch.equal(filter_spectrum(w[perm], (10, 12)), f[perm])
    cperm = torch.randperm(3, generator=g)
    assert torch.equal(filter_spectrum(w[:, cperm], (10, 12)), f[:, cperm])


def test_invariant_set_is_the_rows_and_columns_at_round_iM_over_K() -> None:
    assert invariant_axis(3, 12) == [4, 8]
    assert invariant_axis(3, 28) == [9, 19]  # 9.33 → 9, 18.67 → 19
    assert invariant_axis(3, 32) == [11, 21]  # 10.67 → 11, 21.33 → 21
    freqs = invariant_frequencies(3, (12, 10))
    us, vs = set(invariant_axis(3, 12)), set(invariant_axis(3, 10))
    assert {(int(u), int(v)) for u, v in freqs} == {(u, v) for u in range(12) for v in range(10) if u in us or v in vs}
    assert len(freqs) == 2 * 10 + 2 * 12 - 4
    with pytest.raises(ConfigError):
        invariant_axis(1, 12)


def _sgd_step(w: torch.Tensor, x: torch.Tensor, lr: float, seed: int) -> torch.Tensor:
    """One SGD step on a random quadratic loss of the circular conv output (any loss works)."""
    w = w.clone().requires_grad_(True)
    g = torch.Generator().manual_seed(seed)
    y = _conv_circular(x, w, None, 1)
    target = torch.randn(y.shape, generator=g, dtype=y.dtype)
    ((y - target) ** 2).sum().backward()
    assert w.grad is not None
    return (w - lr * w.grad).detach()


def test_named_components_do_not_move_under_sgd_with_dc_only_input() -> None:
    g = torch.Generator().manual_seed(3)
    m = n = 12  # K divides M: exact invariance (Cor 3.3)
    w = torch.randn(6, 4, 3, 3, generator=g, dtype=torch.float64)
    x = torch.randn(5, 4, 1, 1, generator=g, dtype=torch.float64).expand(5, 4, m, n).contiguous()  # DC only
    w2 = _sgd_step(w, x, lr=1e-2, seed=4)
    assert (w2 - w).abs().max() > 1e-3  # the filters did move
    _, before = invariant_components(w, (m, n))
    _, after = invariant_components(w2, (m, n))
    assert (after - before).abs().max() < 1e-12 * before.abs().max()
    full = filter_spectrum(w2, (m, n)) - filter_spectrum(w, (m, n))
    assert full.abs().max() > 1e-2  # ... while other frequencies move (DC for one)


def test_low_pass_keeps_only_corner_frequencies() -> None:
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 3, 16, 14, generator=g)
    lp = low_pass(x, 1)
    assert lp.dtype == x.dtype and lp.shape == x.shape
    spec = torch.fft.fft2(lp.double())
    mask = low_pass_mask((16, 14), 1)
    assert int(mask.sum()) == 9
    assert spec[..., ~mask].abs().max() < 1e-4
    assert torch.allclose(spec[..., mask], torch.fft.fft2(x.double())[..., mask], atol=1e-3)


@pytest.mark.parametrize(("m", "bound"), [(28, 0.2), (60, 0.1)])
def test_named_components_are_stable_with_low_pass_input(
    m: int, bound: float, capsys: pytest.CaptureFixture[str]
) -> None:
    """Prop 3.4: with a low-pass input S′ drifts much less than the other frequencies; the
    leak from the ±1 input frequencies shrinks as the map grows (K/M → 0)."""
    g = torch.Generator().manual_seed(6)
    n = m
    w = torch.randn(16, 8, 3, 3, generator=g, dtype=torch.float64)
    x = low_pass(torch.randn(8, 8, m, n, generator=g, dtype=torch.float64), 1)
    freqs = invariant_frequencies(3, (m, n))
    inside = torch.zeros(m, n, dtype=torch.bool)
    inside[freqs[:, 0], freqs[:, 1]] = True
    q0, wk = filter_spectrum(w, (m, n)), w
    for step in range(5):
        wk = _sgd_step(wk, x, lr=1e-4, seed=10 + step)
    drift = (filter_spectrum(wk, (m, n)) - q0).abs() / q0.abs().mean()
    ratio = float(drift[..., inside].mean() / drift[..., ~inside].mean())
    with capsys.disabled():
        print(f"\n[low-pass drift] mean drift at S' / elsewhere = {ratio:.4f} (M=N={m}, K=3, r=1, 5 SGD steps)")
    assert ratio < bound
