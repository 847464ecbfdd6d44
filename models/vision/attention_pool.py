"""Backbones with a CLIP-style attention-pooling head, for few-shot adaptation (issue 18).

OpenAI CLIP's ResNets end in ``AttentionPool2d``: the last feature map's H·W tokens get the
spatial mean as an extra first token, a learnt positional embedding is added, and one
multi-head attention step whose *query is the mean token only* pools them into one vector
(then an output projection). SAFE fine-tunes exactly that layer. No CLIP weights are reachable
offline here (the ``open_clip_resnet`` backbone takes CLIP's own ResNets with weights from a local
path, or randomly initialised for the mechanics), so the same head is put on ImageNet
backbones that ship in packages (EfficientNet-Lite0, MobileNetV2), initialised so that it *is*
global average pooling:

* query projection zero → every attention score is 0 → the softmax is uniform over the
  H·W + 1 tokens, and the mean of (mean token, H·W tokens) is the spatial mean;
* value and output projections identity, positional embedding zero → that mean passes
  through unchanged.

The key projection is the identity, not zero: with query *and* key both zero, the gradient of
each with respect to its weights is proportional to the other, so neither could ever train
(SAFE would only move the positional embedding and the value/output side). A zero query alone
already makes the scores exactly zero.

Cost: only the mean token queries, so the key and value projections are folded onto the query
side: score_t = (W_kᵀ q)·x_t + q·b_k and Σ_t a_t (W_v x_t + b_v) = W_v (Σ_t a_t x_t) + b_v per
head. One C×C product per image instead of one per token — the same function, ~T× less work.

``BACKBONES`` (one decorated builder per module of ``models/vision/backbones/``) returns a :class:`PooledBackbone`: ``trunk`` (resize +
grey→RGB + ``Normalize`` + the convolutional features, frozen during few-shot adaptation) and
``pool`` (the attention pool). Images are in [0, 1] at any size and 1 or 3 channels; the trunk
resizes them to the backbone's ``size``, so the model can go straight into the robustness
evaluation (corruptions and attacks act on the dataset's own images).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from trustflow.errors import ConfigError
from trustflow.registry import Options, Registry


class AttentionPool2d(nn.Module):
    """CLIP-style attention pooling of an NCHW feature map into an (N, out_dim) vector.

    ``grid`` is the feature map's side the positional embedding is made for; another size
    gets the spatial part of the embedding bilinearly resized (as CLIP does for other input
    resolutions)."""

    def __init__(self, channels: int, grid: int, heads: int = 8, out_dim: int | None = None) -> None:
        super().__init__()
        if channels % heads:
            raise ConfigError(f"attention pool: {channels} channels do not split into {heads} heads")
        self.channels, self.grid, self.heads = int(channels), int(grid), int(heads)
        self.pos = nn.Parameter(torch.zeros(grid * grid + 1, channels))
        self.q = nn.Linear(channels, channels)
        self.k = nn.Linear(channels, channels)
        self.v = nn.Linear(channels, channels)
        self.out = nn.Linear(channels, out_dim or channels)
        self.reset_to_average()

    @torch.no_grad()
    def reset_to_average(self) -> None:
        """Make the layer exactly global average pooling (see the module docstring)."""
        eye = torch.eye(self.channels)
        self.pos.zero_()
        self.q.weight.zero_()
        self.q.bias.zero_()
        for lin in (self.k, self.v):
            lin.weight.copy_(eye)
            lin.bias.zero_()
        if self.out.out_features != self.channels:
            raise ConfigError("attention pool: average-pool init needs out_dim == channels")
        self.out.weight.copy_(eye)
        self.out.bias.zero_()

    def _pos(self, h: int, w: int) -> torch.Tensor:
        if (h, w) == (self.grid, self.grid):
            return self.pos
        spatial = self.pos[1:].T.reshape(1, self.channels, self.grid, self.grid)
        spatial = F.interpolate(spatial, size=(h, w), mode="bilinear", align_corners=False)
        return torch.cat([self.pos[:1], spatial.reshape(self.channels, h * w).T], 0)

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        n, c, h, w = fmap.shape
        if c != self.channels:
            raise ConfigError(f"attention pool takes {self.channels} channels, got {c}")
        tokens = fmap.flatten(2).transpose(1, 2)  # N, HW, C
        tokens = torch.cat([tokens.mean(1, keepdim=True), tokens], 1) + self._pos(h, w)  # N, T, C
        d = c // self.heads
        q = self.q(tokens[:, 0]).view(n, self.heads, d) / math.sqrt(d)  # N, h, d
        wk = self.k.weight.view(self.heads, d, c)  # rows of head j
        qk = torch.einsum("nhd,hdc->nhc", q, wk)  # W_kᵀ q per head
        scores = torch.einsum("nhc,ntc->nht", qk, tokens) + (q * self.k.bias.view(self.heads, d)).sum(-1, keepdim=True)
        attn = scores.softmax(-1)  # N, h, T
        mixed = torch.einsum("nht,ntc->nhc", attn, tokens)  # Σ_t a_t x_t per head
        wv = self.v.weight.view(self.heads, d, c)
        values = torch.einsum("nhc,hdc->nhd", mixed, wv) + self.v.bias.view(self.heads, d)
        out: torch.Tensor = self.out(values.reshape(n, c))
        return out


class Prepare(nn.Module):
    """Resize to ``size`` × ``size`` (bilinear) and repeat a grey channel to RGB; differentiable,
    so attacks on the dataset's own images reach through it."""

    def __init__(self, size: int, channels: int = 3) -> None:
        super().__init__()
        self.size, self.channels = int(size), int(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1 and self.channels == 3:
            x = x.expand(-1, 3, -1, -1)
        if tuple(x.shape[2:]) != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return x


class PooledBackbone(nn.Module):
    """``trunk`` (images in [0, 1] → feature map) then ``pool`` (map → feature vector): our
    :class:`AttentionPool2d`, or a CLIP model's own attention pool (``open_clip_resnet``)."""

    def __init__(self, trunk: nn.Module, pool: nn.Module, name: str, size: int, dim: int | None = None) -> None:
        super().__init__()
        self.trunk = trunk
        self.pool = pool
        self.name = name
        self.size = int(size)
        self.dim = int(dim if dim is not None else pool.out.out_features)  # type: ignore[union-attr,arg-type]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.pool(self.trunk(x))
        return out


class ForwardFeatures(nn.Module):
    """timm models' ``forward_features`` (the last map, before their own pooling) as a module."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net.forward_features(x)  # type: ignore[operator]
        return out


BACKBONES: Registry[Callable[..., PooledBackbone]] = Registry(
    "few-shot backbone", plugins="trustflow.models.vision.backbones"
)


class BackboneOptions(Options):
    size: int = Field(96, ge=16, le=512)  # input side; the map is size/32 for the ImageNet nets
    heads: int = Field(8, ge=1)
    pretrained: bool = True


def assemble(
    features: nn.Module, normalize: nn.Module, channels: int, name: str, size: int, heads: int
) -> PooledBackbone:
    trunk = nn.Sequential(Prepare(size), normalize, features)
    with torch.no_grad():
        grid = int(trunk.eval()(torch.zeros(1, 3, size, size)).shape[-1])
    return PooledBackbone(trunk, AttentionPool2d(channels, grid, heads), name, size)


def build_backbone(spec: str, **overrides: Any) -> PooledBackbone:
    """The backbone a spec names (``efficientnet_lite0?size=128``), in eval mode."""
    entry, options = BACKBONES.resolve(spec, **overrides)
    backbone: PooledBackbone = entry.obj(**options.model_dump())
    return backbone.eval()


__all__ = [
    "BACKBONES",
    "AttentionPool2d",
    "BackboneOptions",
    "ForwardFeatures",
    "PooledBackbone",
    "Prepare",
    "assemble",
    "build_backbone",
]
