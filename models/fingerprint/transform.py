"""The revised 2-D Fourier transform of conv filters (arXiv 2505.01007, Sec. 3).

For a conv weight ``W`` of shape (D, C, K_h, K_w) that runs on an input map of M×N, filter
``d``'s channel ``c`` has, at frequency (u, v) of the input's grid,

    Q[d, c, u, v] = Σ_{t<K_h} Σ_{s<K_w} W[d, c, t, s] · exp(+i 2π (u t / M + v s / N))

(the kernel zero-padded to M×N, positive exponent). ``F^(uv)_{W_d}`` is the C-vector
``Q[d, :, u, v]``. Why this transform: with circular padding and stride 1 the DFT of the
conv output is the per-frequency product ``H_uv = Σ_c Q[c,u,v] · X̂[c,u,v]`` (plus ``MN·b`` at
DC), so the gradient reaching ``Q`` at (u, v) is driven only by the input's component at
(u, v) and by the taps' geometric sums. With a constant (DC-only) input, a gradient step
moves every tap of a channel by the same amount ``g``, so ``ΔQ[u, v] = g · Σ_t e^{i2πut/M} ·
Σ_s e^{i2πvs/N}``, which vanishes when ``uK/M`` (or ``vK/N``) is a non-zero integer: those
components do not move at all. With a low-pass input they move little.

PyTorch convs are cross-correlations centred on the kernel: a "same" conv (padding p)
shifts the output by p, so its DFT picks up the phase ``exp(-i2π(up/M + vp/N))``. We keep the
paper's origin (tap 0) for ``Q`` and put that phase into :func:`conv_output_spectrum`; the
fingerprint comparison (complex cosine between two models' components at the same (u, v))
is unaffected because both sides carry the same phase.

Choices where the paper is unclear (also in docs/pipelines/provenance.md):

* the invariant set is ``S' = {(u, v) : u ∈ U or v ∈ V}`` with ``U = {round(iM/K_h) mod M}``,
  ``V = {round(jN/K_w) mod N}``, i, j = 1..K−1, rounding half up; all v (resp. u) of the grid
  go with each u ∈ U (resp. v ∈ V). Conjugate pairs (M−u, N−v) are both kept (for a real
  filter they carry the same information; ρ counts them both, as the paper's set does).
  Exact invariance under a DC-only input holds when K divides M (and N); otherwise
  ``round`` makes it approximate, as the paper says.
* the low-pass keeps the product band ``u ∈ [0, r] ∪ [M−r, M)`` *and* ``v ∈ [0, r] ∪ [N−r, N)``
  (the paper's ``S^low_r``); it is symmetric, so a real map stays real.
"""

from __future__ import annotations

import math

import torch

from trustflow.errors import ConfigError


def _grid(grid: tuple[int, int] | torch.Size | list[int]) -> tuple[int, int]:
    m, n = (int(g) for g in grid)
    if m < 1 or n < 1:
        raise ConfigError(f"frequency grid must be positive, got {m}×{n}")
    return m, n


def filter_spectrum(weight: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """``Q`` of every filter and channel on the M×N grid: complex, shape (D, C, M, N).

    ``weight`` is (D, C, K_h, K_w) with K ≤ the grid; computed as an unnormalised inverse
    FFT of the zero-padded kernel (that is the positive-exponent sum)."""
    m, n = _grid(grid)
    if weight.ndim != 4:
        raise ConfigError(f"conv weight must be 4-D (D, C, K, K), got shape {tuple(weight.shape)}")
    if weight.shape[2] > m or weight.shape[3] > n:
        raise ConfigError(f"kernel {tuple(weight.shape[2:])} is larger than the grid {m}×{n}")
    w = weight.detach().to(torch.float64)
    return torch.fft.ifft2(w, s=(m, n), norm="forward")


def invariant_axis(kernel: int, size: int) -> list[int]:
    """``{round(i·size/kernel) mod size : i = 1..kernel−1}`` (round half up), sorted."""
    if kernel < 2:
        raise ConfigError(f"kernel size must be >= 2 for invariant frequencies, got {kernel}")
    return sorted({int(math.floor(i * size / kernel + 0.5)) % size for i in range(1, kernel)})


SELECTIONS = ("paper", "cross")


def invariant_frequencies(
    kernel: int | tuple[int, int], grid: tuple[int, int], selection: str = "paper"
) -> torch.Tensor:
    """The fingerprint's frequencies as an int64 tensor of (u, v) rows, sorted by u then v.

    ``selection="paper"``: S′, every (u, v) with u ∈ U *or* v ∈ V (see module doc).
    ``selection="cross"``: only U × V (u ∈ U *and* v ∈ V). Why: the drift of a component
    under a gradient step driven by the input frequency (k, l) is ∝ |G_M(u−k)|·|G_N(v−l)|
    with ``G_M(u) = Σ_{t<K} e^{i2πut/M}``; on S′ only one factor is small (the other reaches
    K where v = l, i.e. next to the DC and ±1 frequencies the low-pass keeps), on U × V both
    are. It keeps far fewer components ((K−1)² pairs: 4 for K = 3), each much more stable."""
    m, n = _grid(grid)
    if selection not in SELECTIONS:
        raise ConfigError(f"unknown frequency selection {selection!r}; choose one of {', '.join(SELECTIONS)}")
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    us, vs = set(invariant_axis(kh, m)), set(invariant_axis(kw, n))
    if selection == "cross":
        pairs = [(u, v) for u in sorted(us) for v in sorted(vs)]
    else:
        pairs = [(u, v) for u in range(m) for v in range(n) if u in us or v in vs]
    return torch.tensor(pairs, dtype=torch.int64).reshape(-1, 2)


def exactly_invariant(kernel: int, size: int) -> bool:
    """Whether S′ is exactly invariant under a DC-only input on this axis (K divides M)."""
    return size % kernel == 0


def invariant_components(
    weight: torch.Tensor, grid: tuple[int, int], selection: str = "paper"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(frequencies (P, 2), components (D, C, P) complex128) of ``weight`` at S′ (or at the
    ``selection`` of :func:`invariant_frequencies`)."""
    freqs = invariant_frequencies((int(weight.shape[2]), int(weight.shape[3])), grid, selection)
    q = filter_spectrum(weight, grid)
    return freqs, q[:, :, freqs[:, 0], freqs[:, 1]]


def low_pass_mask(grid: tuple[int, int], radius: int = 1, device: torch.device | str | None = None) -> torch.Tensor:
    """Boolean (M, N) mask of ``S^low_r``: frequencies within ``radius`` of a corner on both axes."""
    m, n = _grid(grid)
    if radius < 0:
        raise ConfigError(f"low-pass radius must be >= 0, got {radius}")

    def axis(size: int) -> torch.Tensor:
        k = torch.arange(size, device=device)
        return (k <= radius) | (k >= size - radius)

    return axis(m)[:, None] & axis(n)[None, :]


def low_pass(x: torch.Tensor, radius: int = 1) -> torch.Tensor:
    """``Λ(x)``: the real map whose per-channel DFT is x's on ``S^low_r`` and zero elsewhere.

    Differentiable (FFT, mask, inverse FFT); ``x`` is (..., M, N)."""
    mask = low_pass_mask((x.shape[-2], x.shape[-1]), radius, x.device)
    spec = torch.fft.fft2(x)
    return torch.fft.ifft2(spec * mask).real.to(x.dtype)


def _signed_band(size: int, radius: int) -> torch.Tensor:
    if 2 * radius + 1 > size:
        raise ConfigError(f"low-pass radius {radius} does not fit a map of size {size}")
    return torch.arange(-radius, radius + 1)


def band_conv(x: torch.Tensor, weight: torch.Tensor, radius: int, grid: tuple[int, int], padding: int) -> torch.Tensor:
    """``W ⊛ Λ(x)`` (circular "same" conv, stride 1, no bias) with the filters' response read
    on a *virtual* M′×N′ grid: output spectrum ``Q_{M′N′}(k, l)·e^{-i2π(kp/M′+lp/N′)}·X̂(k, l)``
    at the signed frequencies |k|, |l| ≤ r the low-pass keeps, zero elsewhere.

    Why: Λ(x) is band-limited, so the conv only ever sees W's response at those few
    frequencies, and which grid they sit on is a free choice. With M′ = M it equals the
    plain circular conv of Λ(x) (tested); a larger M′ puts the ±1 frequencies closer to DC
    (less leak into S′), and a K-divisible M′ makes S′ exactly invariant when r = 0. The
    fingerprint must then be read on the same M′×N′ grid."""
    mv, nv = _grid(grid)
    m, n = int(x.shape[-2]), int(x.shape[-1])
    ku, kv = _signed_band(m, radius), _signed_band(n, radius)
    cdtype = torch.complex128 if x.dtype == torch.float64 else torch.complex64
    k_h, k_w = int(weight.shape[2]), int(weight.shape[3])
    t = torch.arange(k_h, dtype=x.dtype, device=x.device) - padding
    s = torch.arange(k_w, dtype=x.dtype, device=x.device) - padding
    eu = torch.exp(2j * math.pi * ku.to(x.device, x.dtype)[:, None] * t[None, :] / mv).to(cdtype)  # Ku, K_h
    ev = torch.exp(2j * math.pi * kv.to(x.device, x.dtype)[:, None] * s[None, :] / nv).to(cdtype)  # Kv, K_w
    h = torch.einsum("dcts,ut,vs->dcuv", weight.to(cdtype), eu, ev)  # response at the band
    iu, iv = (ku % m).to(x.device), (kv % n).to(x.device)
    xf = torch.fft.fft2(x)[:, :, iu][:, :, :, iv]  # B, C, Ku, Kv
    yb = torch.einsum("dcuv,bcuv->bduv", h, xf.to(cdtype))
    spec = torch.zeros((x.shape[0], weight.shape[0], m, n), dtype=cdtype, device=x.device)
    spec[:, :, iu[:, None], iv[None, :]] = yb
    return torch.fft.ifft2(spec).real.to(x.dtype)


def conv_output_spectrum(
    weight: torch.Tensor, x: torch.Tensor, bias: torch.Tensor | None = None, padding: int = 0
) -> torch.Tensor:
    """The DFT of ``conv2d(circular_pad(x, padding), weight, bias)`` (stride 1) predicted in
    the frequency domain: ``Σ_c Q[d,c,u,v]·X̂[c,u,v]·e^{-i2π(up/M+vp/N)} + δ_uv·MN·b_d``.

    ``x`` is (B, C, M, N); returns (B, D, M, N) complex128. The conv-in-frequency identity
    (Thm 3.1 of the paper) that the unit tests check against ``torch``'s conv."""
    m, n = int(x.shape[-2]), int(x.shape[-1])
    q = filter_spectrum(weight, (m, n))  # D, C, M, N
    xf = torch.fft.fft2(x.detach().to(torch.float64))  # B, C, M, N
    out = torch.einsum("dcuv,bcuv->bduv", q, xf)
    if padding:
        u = torch.arange(m, dtype=torch.float64)[:, None]
        v = torch.arange(n, dtype=torch.float64)[None, :]
        out = out * torch.exp(-2j * math.pi * (u * padding / m + v * padding / n))
    if bias is not None:
        out[:, :, 0, 0] += m * n * bias.detach().to(torch.float64)
    return out


__all__ = [
    "SELECTIONS",
    "band_conv",
    "conv_output_spectrum",
    "exactly_invariant",
    "filter_spectrum",
    "invariant_axis",
    "invariant_components",
    "invariant_frequencies",
    "low_pass",
    "low_pass_mask",
]
