"""The fingerprint module of arXiv 2505.01007, inserted into any classifier by layer name.

``insert_fingerprint(model, FingerprintOptions(layer="net.3"))`` replaces the named conv
layer ``L`` by :class:`Fingerprinted` (``L(x) + Φ(x)``) where the module

    Φ(x) = P( W ⊛ Λ(x) + b )

runs ``filters`` (D) K×K filters ``W`` with circular padding on ``Λ(x)``, the low-pass copy
of the layer's input (frequencies within ``radius`` of the corners). Because its input only
holds low frequencies, the components of ``W`` at the invariant set S′ barely move under
later gradient descent (fine-tuning): they are the fingerprint
(:func:`extract_fingerprint`).

Choices where the paper is silent or unclear (also in docs/pipelines/provenance.md):

* **Merge**: Φ's output is *added* to the layer's output. ``P`` is the identity when D equals
  the layer's output channels (the default D), else a learned bias-free 1×1 conv D → C_out.
* **Stride**: Φ uses the layer's stride, so the shapes agree (a DC-only input still gives a
  constant per-channel gradient, so the invariance argument holds); the layer must keep
  the spatial size a K×K "same" conv would give, else the first forward raises.
* **Grid**: M×N is the layer's input size, recorded in the buffer ``grid`` on the first
  forward (so a checkpoint knows it).
* **Anti-overwriting**: the classifier head gets one extra output, the pseudo-class n
  (:func:`anti_overwrite_loss`): with ``W + ε`` the model is trained to predict it for every
  input, ``L = L_task + λ·CE(f(x; W+ε), n)``, λ = 5e-4. ``ε`` is the real part of the inverse
  DFT of a unit component at a frequency drawn uniformly from the M×N grid, on the K×K taps
  (the same pattern for every filter and channel), rescaled to ``‖ε‖₂ = 0.5·‖W‖₂``. BatchNorm
  running statistics are frozen during that noised forward so the noise does not leak into
  the clean model's statistics. The head is the classifier's last ``nn.Linear``.

Options beyond the paper (defaults are the paper's; benchmarks/fingerprint.py measures each):

* ``virtual_grid`` (M′): read the filters' response on an M′×M′ grid instead of the input's
  (:func:`~trustflow.models.fingerprint.transform.band_conv`); the grid buffer records M′
  and the fingerprint is read there. With ``radius=0`` and K dividing M′, S′ does not move
  at all under any SGD step, momentum and weight decay included (the module sees only each
  channel's tap sum, so every gradient is a constant over the taps; weight decay only
  scales). 28×28 maps are not divisible by K = 3: use M′ = 30.
* ``normalize``: divide Λ(x) by its per-sample RMS, so scaling the feeding layer by a
  (combined attack) no longer scales the module's input, and the attack need not (must
  not) divide the module's filters by a: without it, the later fine-tune moves them a²
  times faster relative to their size.
* ``frequencies``: ``paper`` (S′) or ``cross`` (U × V only, see
  :func:`~trustflow.models.fingerprint.transform.invariant_frequencies`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import nn

from trustflow.errors import ConfigError, InputError
from trustflow.models.fingerprint.transform import SELECTIONS, band_conv, invariant_components, low_pass
from trustflow.registry import Options, validate_options

FINGERPRINT_META = "fingerprint"  # key of the options in a checkpoint's meta


class FingerprintOptions(Options):
    """Where and how the fingerprint module is inserted (see the module docstring)."""

    layer: str = Field(description="name of the conv layer (as in model.named_modules(), 'net.' optional)")
    filters: int | None = Field(None, ge=1, description="D; default: the layer's output channels")
    kernel: int = Field(3, ge=2)
    radius: int = Field(1, ge=0, description="low-pass radius r")
    anti_overwrite: float = Field(5e-4, ge=0.0, description="λ of the pseudo-class term; 0: no pseudo-class")
    noise_scale: float = Field(0.5, gt=0.0, description="‖ε‖₂ / ‖W‖₂ of the overwrite noise")
    seed: int = 0  # the module's initial weights
    virtual_grid: int | None = Field(
        None, ge=2, description="M′: read the filters' response on an M′×M′ grid (default: the input's M×N)"
    )
    normalize: bool = Field(False, description="divide the low-pass input by its per-sample RMS")
    frequencies: str = Field("paper", description="fingerprint frequencies: 'paper' (S′) or 'cross' (U×V)")

    @field_validator("frequencies")
    @classmethod
    def _known_selection(cls, value: str) -> str:
        if value not in SELECTIONS:
            raise ValueError(f"must be one of {', '.join(SELECTIONS)}")
        return value


def _rms(x: torch.Tensor) -> torch.Tensor:
    """Per-sample RMS over (C, M, N); the tiny floor only guards an all-zero input."""
    return x.pow(2).mean(dim=(1, 2, 3), keepdim=True).add(1e-20).sqrt()


class FingerprintConv(nn.Module):
    """Φ: D K×K filters on the low-pass copy of the input, circular padding, optional 1×1 projection."""

    grid: torch.Tensor

    def __init__(
        self,
        in_channels: int,
        filters: int,
        out_channels: int,
        kernel: int,
        radius: int,
        stride: int,
        seed: int,
        virtual_grid: int | None = None,
        normalize: bool = False,
    ) -> None:
        super().__init__()
        if kernel % 2 == 0:
            raise ConfigError(f"fingerprint kernel must be odd (a 'same' conv), got {kernel}")
        if virtual_grid is not None and virtual_grid < kernel:
            raise ConfigError(f"virtual grid {virtual_grid} is smaller than the kernel {kernel}")
        self.radius, self.stride, self.kernel = int(radius), int(stride), int(kernel)
        self.virtual_grid, self.normalize = virtual_grid, bool(normalize)
        g = torch.Generator().manual_seed(int(seed))
        fan_in = in_channels * kernel * kernel
        self.weight = nn.Parameter(torch.randn(filters, in_channels, kernel, kernel, generator=g) / math.sqrt(fan_in))
        self.bias = nn.Parameter(torch.zeros(filters))
        self.project: nn.Conv2d | None = None
        if filters != out_channels:
            self.project = nn.Conv2d(filters, out_channels, 1, bias=False)
            with torch.no_grad():
                self.project.weight.copy_(torch.randn(self.project.weight.shape, generator=g) / math.sqrt(filters))
        self.register_buffer("grid", torch.zeros(2, dtype=torch.int64))
        self.noise: torch.Tensor | None = None  # set only by anti_overwrite_loss

    @property
    def filters(self) -> int:
        return int(self.weight.shape[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hw = (int(x.shape[-2]), int(x.shape[-1]))
        if int(self.grid[0]) == 0:
            self.grid.copy_(torch.tensor(hw if self.virtual_grid is None else (self.virtual_grid,) * 2))
        w = self.weight if self.noise is None else self.weight + self.noise
        p = self.kernel // 2
        if self.virtual_grid is None:
            lp = low_pass(x, self.radius)
            if self.normalize:
                lp = lp / _rms(lp)
            y = F.conv2d(F.pad(lp, (p, p, p, p), mode="circular"), w, self.bias, self.stride)
        else:
            if self.normalize:  # Λ is linear, so dividing x by Λ(x)'s RMS normalises Λ(x)
                x = x / _rms(low_pass(x, self.radius))
            y = band_conv(x, w, self.radius, (self.virtual_grid, self.virtual_grid), p)
            y = (y + self.bias[None, :, None, None])[..., :: self.stride, :: self.stride]
        return y if self.project is None else self.project(y)


class Fingerprinted(nn.Module):
    """A backbone conv layer with the fingerprint module in parallel: ``layer(x) + fingerprint(x)``."""

    def __init__(self, layer: nn.Conv2d, fingerprint: FingerprintConv, name: str) -> None:
        super().__init__()
        self.layer = layer
        self.fingerprint = fingerprint
        self.layer_name = name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layer(x)
        extra = self.fingerprint(x)
        if out.shape != extra.shape:
            raise ConfigError(
                f"fingerprint on {self.layer_name!r}: the layer gives {tuple(out.shape[1:])}, the module "
                f"{tuple(extra.shape[1:])}; choose a conv whose output keeps the 'same'-conv size"
            )
        return out + extra


class PseudoClassHead(nn.Linear):
    """The classifier's last linear layer with one extra output: the pseudo-class (index n)."""


# -- insertion --------------------------------------------------------------------------------


def _resolve_name(model: nn.Module, name: str) -> str:
    names = dict(model.named_modules())
    for candidate in (name, f"net.{name}"):
        if candidate in names:
            return candidate
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    shown = ", ".join(convs[:12]) + (" ..." if len(convs) > 12 else "")
    raise ConfigError(f"fingerprint layer {name!r} is not a module of the model; its conv layers: {shown}")


def _set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)  # nn.Module.__setattr__ also replaces a Sequential's "3"


def _head_name(model: nn.Module) -> str:
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ConfigError("the anti-overwriting term needs a classifier whose last layer is an nn.Linear")
    return linears[-1]


def insert_fingerprint(model: nn.Module, options: FingerprintOptions | dict[str, Any]) -> nn.Module:
    """Insert the fingerprint module (in place) and, when λ > 0, the pseudo-class head.

    Returns the model, with ``model.fingerprint_options`` set. Raises ``ConfigError`` for an
    unknown layer, a layer that is not a single-group-agnostic ``nn.Conv2d``, or a model
    already fingerprinted."""
    opts = (
        options
        if isinstance(options, FingerprintOptions)
        else validate_options("fingerprint", FingerprintOptions, options)
    )
    if fingerprint_layers(model):
        raise ConfigError("the model already holds a fingerprint module")
    name = _resolve_name(model, opts.layer)
    layer = model.get_submodule(name)
    if not isinstance(layer, nn.Conv2d):
        raise ConfigError(f"fingerprint layer {name!r} is a {type(layer).__name__}, not an nn.Conv2d")
    stride = layer.stride[0]
    if layer.stride[0] != layer.stride[1]:
        raise ConfigError(f"fingerprint layer {name!r} has unequal strides {layer.stride}")
    filters = opts.filters or layer.out_channels
    module = FingerprintConv(
        layer.in_channels,
        filters,
        layer.out_channels,
        opts.kernel,
        opts.radius,
        stride,
        opts.seed,
        opts.virtual_grid,
        opts.normalize,
    )
    module.to(layer.weight.device)
    _set_module(model, name, Fingerprinted(layer, module, name))
    if opts.anti_overwrite > 0:
        head_name = _head_name(model)
        head = model.get_submodule(head_name)
        assert isinstance(head, nn.Linear)  # _head_name only returns linears
        if not isinstance(head, PseudoClassHead):
            new = PseudoClassHead(head.in_features, head.out_features + 1, bias=head.bias is not None)
            with torch.no_grad():
                new.weight[:-1].copy_(head.weight)
                new.weight[-1].normal_(0.0, float(head.weight.std()) if head.weight.numel() > 1 else 0.01)
                if head.bias is not None:
                    new.bias[:-1].copy_(head.bias)
                    new.bias[-1].fill_(0.0)
            _set_module(model, head_name, new.to(head.weight.device))
    model.fingerprint_options = opts.model_copy(update={"layer": name})  # type: ignore[assignment]
    return model


def fingerprint_layers(model: nn.Module) -> dict[str, Fingerprinted]:
    """Name → :class:`Fingerprinted` of every fingerprinted layer (one, normally)."""
    return {n: m for n, m in model.named_modules() if isinstance(m, Fingerprinted)}


def pseudo_class(model: nn.Module) -> int | None:
    """The pseudo-class index (the head's last output), or None without the anti-overwriting head."""
    heads = [m for m in model.modules() if isinstance(m, PseudoClassHead)]
    return None if not heads else heads[-1].out_features - 1


# -- the anti-overwriting term ---------------------------------------------------------------------


def overwrite_noise(
    weight: torch.Tensor, grid: tuple[int, int], generator: torch.Generator, scale: float
) -> torch.Tensor:
    """ε: the real inverse DFT of a unit component at a random (u, v) of the M×N grid, on the
    K×K taps, the same for every filter and channel, with ‖ε‖₂ = scale·‖W‖₂."""
    m, n = max(1, int(grid[0])), max(1, int(grid[1]))
    u = int(torch.randint(m, (1,), generator=generator))
    v = int(torch.randint(n, (1,), generator=generator))
    k_h, k_w = int(weight.shape[2]), int(weight.shape[3])
    t = torch.arange(k_h, dtype=torch.float64)[:, None]
    s = torch.arange(k_w, dtype=torch.float64)[None, :]
    pattern = torch.cos(2 * math.pi * (u * t / m + v * s / n))
    if float(pattern.norm()) < 1e-12:  # cannot happen for (u, v) on the grid (tap 0 is 1), kept for safety
        pattern = torch.ones_like(pattern)
    eps = pattern.to(weight.dtype).to(weight.device).expand_as(weight)
    return eps * (scale * weight.detach().norm() / eps.norm())


@contextlib.contextmanager
def _frozen_batchnorm(model: nn.Module) -> Iterator[None]:
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, mom in zip(bns, saved, strict=True):
            m.momentum = mom


def anti_overwrite_loss(model: nn.Module, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``CE(f(x; W+ε), pseudo-class)`` for the fingerprinted layer (not yet weighted by λ).

    ``model`` may be a DDP wrapper (the forward goes through it, the noise is set on the
    inner module); requires the pseudo-class head (λ > 0 at insertion)."""
    inner = getattr(model, "module", model)
    target = pseudo_class(inner)
    layers = fingerprint_layers(inner)
    if target is None or not layers:
        raise ConfigError("anti_overwrite_loss needs a model with a fingerprint module and its pseudo-class head")
    opts: FingerprintOptions | None = getattr(inner, "fingerprint_options", None)
    scale = opts.noise_scale if opts is not None else 0.5
    fp = next(iter(layers.values())).fingerprint
    grid = (int(fp.grid[0]) or int(x.shape[-2]), int(fp.grid[1]) or int(x.shape[-1]))
    fp.noise = overwrite_noise(fp.weight, grid, generator, scale)
    try:
        with _frozen_batchnorm(inner):
            logits = model(x)
    finally:
        fp.noise = None
    return F.cross_entropy(logits, torch.full((x.shape[0],), target, dtype=torch.long, device=logits.device))


# -- extraction -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fingerprint:
    """The invariant components of one conv weight: ``values[d, c, p]`` at ``freqs[p] = (u, v)``."""

    layer: str
    grid: tuple[int, int]
    freqs: np.ndarray  # (P, 2) int64
    values: np.ndarray  # (D, C, P) complex128
    source: str  # "module": the fingerprint module's filters | "layer": a plain conv read at that layer
    selection: str = "paper"  # which frequencies (transform.invariant_frequencies)

    @property
    def shape(self) -> tuple[int, int, int]:
        d, c, p = self.values.shape
        return int(d), int(c), int(p)


def extract_fingerprint(
    model: nn.Module,
    layer: str | None = None,
    grid: tuple[int, int] | None = None,
    selection: str | None = None,
) -> Fingerprint:
    """The fingerprint of ``model``: its module's filters at S′ (grid from the module's buffer).

    A model without a module (an independent model, a distilled student built without one)
    is read at ``layer`` (a plain ``nn.Conv2d``) on ``grid``, so it can still be compared; a
    model with neither raises ``InputError``. ``selection`` overrides the frequencies (default:
    the model's ``frequencies`` option, else the paper's S′)."""
    opts: FingerprintOptions | None = getattr(model, "fingerprint_options", None)
    if selection is None:
        selection = opts.frequencies if opts is not None else "paper"
    layers = fingerprint_layers(model)
    if layers:
        name, fl = next(iter(layers.items()))
        m_grid = (int(fl.fingerprint.grid[0]), int(fl.fingerprint.grid[1]))
        if m_grid[0] == 0:
            if grid is None:
                raise InputError(f"fingerprint module at {name!r} has not seen an input yet: its grid M×N is unknown")
            m_grid = grid
        freqs, comps = invariant_components(fl.fingerprint.weight, m_grid, selection)
        return Fingerprint(name, m_grid, freqs.numpy(), comps.numpy(), "module", selection)
    if layer is None or grid is None:
        raise InputError("the model has no fingerprint module (pass layer and grid to read a plain conv)")
    try:
        name = _resolve_name(model, layer)
    except ConfigError as exc:
        raise InputError(str(exc)) from None
    conv = model.get_submodule(name)
    if isinstance(conv, Fingerprinted):  # pragma: no cover - handled above
        conv = conv.fingerprint
    if not isinstance(conv, nn.Conv2d):
        raise InputError(f"layer {name!r} is a {type(conv).__name__}, not a conv layer")
    freqs, comps = invariant_components(conv.weight, grid, selection)
    return Fingerprint(name, grid, freqs.numpy(), comps.numpy(), "layer", selection)


def fingerprint_rows(model_name: str, fp: Fingerprint) -> dict[str, np.ndarray | list[Any]]:
    """Columns of the ``fingerprint`` table (data/schemas.py FINGERPRINT) for one model."""
    d, c, p = fp.shape
    dd, cc, pp = np.meshgrid(np.arange(d), np.arange(c), np.arange(p), indexing="ij")
    vals = fp.values.reshape(-1)
    return {
        "model": [model_name] * vals.size,
        "layer": [fp.layer] * vals.size,
        "filter": dd.reshape(-1).astype(np.int32),
        "channel": cc.reshape(-1).astype(np.int32),
        "u": fp.freqs[pp.reshape(-1), 0].astype(np.int32),
        "v": fp.freqs[pp.reshape(-1), 1].astype(np.int32),
        "grid_m": np.full(vals.size, fp.grid[0], np.int32),
        "grid_n": np.full(vals.size, fp.grid[1], np.int32),
        "real": vals.real.astype(np.float64),
        "imag": vals.imag.astype(np.float64),
    }


__all__ = [
    "FINGERPRINT_META",
    "Fingerprint",
    "FingerprintConv",
    "FingerprintOptions",
    "Fingerprinted",
    "PseudoClassHead",
    "anti_overwrite_loss",
    "extract_fingerprint",
    "fingerprint_layers",
    "fingerprint_rows",
    "insert_fingerprint",
    "overwrite_noise",
    "pseudo_class",
]
