"""The few-shot method contract, its registry and the parts methods share.

A method is one module in this package with ``@FEWSHOT_METHODS.register("<name>", options=...)``
on a :class:`FewShotMethod` subclass whose ``fit(task, config)`` returns an
:class:`AdaptedModel`: ``trunk`` (images in [0, 1] → feature map) then ``head`` (map → logits).
Methods that keep the backbone frozen return the backbone's own trunk object, so evaluation
can feed the head cached maps (``AdaptedModel.frozen_trunk``); full fine-tuning returns a
trained copy. Either way ``AdaptedModel`` is an ordinary classifier on images, which is what
the robustness evaluation (corruptions, FGSM/PGD) needs.

Shared choices (documented in docs/pipelines/fewshot.md):

* Features are L2-normalised pooled vectors; the **classifier weights** of the methods that
  CLIP would give a text classifier are the L2-normalised class means of the *original*
  pooled support features (image prototypes: no text tower here), fixed.
* Logits are ``config.scale`` × cosine (CLIP's learnt scale is ~100; 30 trains more gently
  with few shots).
* Training is full-batch-ish AdamW over the support set (``config.batch_size``), epochs and
  learning rate per method, shuffled with ``config.seed``; hyper-parameters that the methods'
  papers tune on validation (α, β, the blend ratio, C) are chosen on the episode's validation
  shots, ties to the first grid value.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from trustflow.models.vision.attention_pool import PooledBackbone
from trustflow.registry import Entry, Options, Registry
from trustflow.tasks.fewshot.features import FeatureCache


class AdaptConfig(Options):
    """What every method's training shares (its own knobs are its ``Options``)."""

    epochs: int = Field(default=20, ge=0)
    batch_size: int = Field(default=128, ge=1)
    scale: float = Field(default=30.0, gt=0)
    seed: int = 0


@dataclass
class FewShotTask:
    """One episode as a method sees it: the frozen backbone, the support and validation shots
    (pool indices, labels) and the cache of the pool's feature maps."""

    backbone: PooledBackbone
    num_classes: int
    cache: FeatureCache
    support: np.ndarray
    support_y: torch.Tensor
    val: np.ndarray
    val_y: torch.Tensor

    def support_maps(self) -> torch.Tensor:
        return self.cache.maps(self.support)

    def val_maps(self) -> torch.Tensor:
        return self.cache.maps(self.val)

    def images(self, idx: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(self.cache.images[idx]))


def l2n(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, dim=-1)


def prototypes(features: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """L2-normalised class means of L2-normalised features (num_classes × dim)."""
    f = l2n(features)
    return l2n(torch.stack([f[y == c].mean(0) for c in range(num_classes)]))


class PoolFeatures(nn.Module):
    """map → L2-normalised pooled feature."""

    def __init__(self, pool: nn.Module) -> None:
        super().__init__()
        self.pool = pool

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return l2n(self.pool(maps))


class BlendFeatures(nn.Module):
    """SAFE's residual blend: normalise(f_orig + α·f_ft) (α = 0 is the original feature)."""

    def __init__(self, orig: nn.Module, tuned: nn.Module, alpha: float) -> None:
        super().__init__()
        self.orig, self.tuned, self.alpha = orig, tuned, float(alpha)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        f = self.orig(maps)
        if self.alpha != 0.0:
            f = f + self.alpha * self.tuned(maps)
        return l2n(f)


class CosineHead(nn.Module):
    """scale · featurize(map) · Wᵀ, W the (fixed or trained) normalised class weights."""

    weights: torch.Tensor

    def __init__(self, featurize: nn.Module, weights: torch.Tensor, scale: float, train_weights: bool = False) -> None:
        super().__init__()
        self.featurize = featurize
        self.scale = float(scale)
        if train_weights:
            self.weights = nn.Parameter(weights.clone())
        else:
            self.register_buffer("weights", weights.clone())

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return self.scale * self.featurize(maps) @ l2n(self.weights).T


class AdaptedModel(nn.Module):
    """An adapted classifier on images in [0, 1]: ``head(trunk(x))``."""

    def __init__(self, trunk: nn.Module, head: nn.Module, frozen_trunk: bool) -> None:
        super().__init__()
        self.trunk, self.head, self.frozen_trunk = trunk, head, frozen_trunk

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.trunk(x))
        return out


def frozen(module: nn.Module) -> nn.Module:
    """``module`` in eval mode with no parameter requiring gradients (returned for chaining)."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()


def train_loop(
    params: Sequence[torch.Tensor],
    loss_fn: Callable[[np.ndarray], torch.Tensor],
    n: int,
    config: AdaptConfig,
    lr: float,
    weight_decay: float = 0.0,
    epochs: int | None = None,
) -> list[float]:
    """AdamW over ``params``; ``loss_fn(batch indices)`` per step, batches of a seeded
    permutation of ``range(n)``. Returns the mean loss per epoch."""
    opt = torch.optim.AdamW(list(params), lr=lr, weight_decay=weight_decay)
    rng = np.random.default_rng(config.seed)
    history: list[float] = []
    for _ in range(config.epochs if epochs is None else epochs):
        order = rng.permutation(n)
        losses = []
        for i in range(0, n, config.batch_size):
            loss = loss_fn(order[i : i + config.batch_size])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        history.append(float(np.mean(losses)) if losses else float("nan"))
    return history


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    return float((logits.argmax(1) == y).float().mean()) if len(y) else float("nan")


def pick(grid: Sequence[Any], score: Callable[[Any], float]) -> tuple[Any, float]:
    """The grid value with the best score (ties: the first), and that score."""
    best, best_score = grid[0], -np.inf
    for value in grid:
        s = score(value)
        if s > best_score:
            best, best_score = value, s
    return best, float(best_score)


OptionsT = TypeVar("OptionsT", bound=Options)


class FewShotMethod(ABC, Generic[OptionsT]):
    """One adaptation method (options validated by the registry)."""

    name: ClassVar[str]
    Options: ClassVar[type[Options]]

    def __init__(self, options: OptionsT) -> None:
        self.options = options
        self.info: dict[str, Any] = {}  # chosen hyper-parameters, losses: the benchmark records them

    @abstractmethod
    def fit(self, task: FewShotTask, config: AdaptConfig) -> AdaptedModel:
        """The adapted model for ``task`` (the backbone itself is never modified)."""


def _build(entry: Entry[type[FewShotMethod[Any]]], options: Any) -> FewShotMethod[Any]:
    return entry.obj(options)


FEWSHOT_METHODS: Registry[type[FewShotMethod[Any]]] = Registry(
    "few-shot method", plugins="trustflow.tasks.fewshot.methods", factory=_build
)


def build_method(spec: str, **overrides: Any) -> FewShotMethod[Any]:
    method: FewShotMethod[Any] = FEWSHOT_METHODS.create(spec, **overrides)
    return method


__all__ = [
    "FEWSHOT_METHODS",
    "AdaptConfig",
    "AdaptedModel",
    "BlendFeatures",
    "CosineHead",
    "FewShotMethod",
    "FewShotTask",
    "PoolFeatures",
    "accuracy",
    "build_method",
    "frozen",
    "l2n",
    "pick",
    "prototypes",
    "train_loop",
]
