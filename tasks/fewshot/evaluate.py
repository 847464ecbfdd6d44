"""One episode end to end: build the method's task, fit, score the query images.

The backbone is frozen here once (eval mode, no gradients) and shared by every method and
episode; the two :class:`FeatureCache` objects (pool and query images) are what makes the
frozen-trunk methods cheap after the first episode of a set.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from trustflow.models.vision.attention_pool import PooledBackbone
from trustflow.tasks.fewshot.data import Episode, FewShotSet
from trustflow.tasks.fewshot.features import FeatureCache
from trustflow.tasks.fewshot.methods.base import AdaptConfig, AdaptedModel, FewShotTask, accuracy, build_method, frozen


@dataclass
class Caches:
    """Feature maps of a set's pool (train) and query (test) images under one backbone."""

    train: FeatureCache
    test: FeatureCache

    @classmethod
    def of(cls, backbone: PooledBackbone, data: FewShotSet, enabled: bool = True) -> Caches:
        frozen(backbone)
        return cls(
            FeatureCache(backbone.trunk, data.train.x, enabled=enabled),
            FeatureCache(backbone.trunk, data.test.x, enabled=enabled),
        )


@dataclass
class EpisodeResult:
    method: str
    set_name: str
    k: int
    seed: int
    accuracy: float
    fit_seconds: float
    info: dict[str, Any] = field(default_factory=dict)
    model: AdaptedModel | None = None


def make_task(backbone: PooledBackbone, data: FewShotSet, episode: Episode, cache: FeatureCache) -> FewShotTask:
    y = data.train.y
    return FewShotTask(
        backbone,
        data.num_classes,
        cache,
        episode.support,
        torch.from_numpy(y[episode.support]),
        episode.val,
        torch.from_numpy(y[episode.val]),
    )


@torch.no_grad()
def predict(model: AdaptedModel, cache: FeatureCache, idx: np.ndarray, batch_size: int = 128) -> torch.Tensor:
    """Logits of the images ``idx`` of ``cache``: through the head alone on cached maps when
    the model kept the backbone's trunk, else through the whole model."""
    model.eval()
    if model.frozen_trunk and model.trunk is cache.trunk:
        return torch.cat([model.head(cache.maps(idx[i : i + batch_size])) for i in range(0, len(idx), batch_size)])
    images = cache.images
    return torch.cat(
        [
            model(torch.from_numpy(np.ascontiguousarray(images[idx[i : i + batch_size]])))
            for i in range(0, len(idx), batch_size)
        ]
    )


def run_episode(
    method: str,
    backbone: PooledBackbone,
    data: FewShotSet,
    episode: Episode,
    caches: Caches,
    config: AdaptConfig | None = None,
    keep_model: bool = False,
) -> EpisodeResult:
    """Fit ``method`` (a spec) on ``episode`` and score it on the episode's query images."""
    config = config or AdaptConfig(seed=episode.seed)
    fitter = build_method(method)
    torch.manual_seed(config.seed)
    t0 = time.perf_counter()
    model = fitter.fit(make_task(backbone, data, episode, caches.train), config)
    seconds = time.perf_counter() - t0
    logits = predict(model, caches.test, episode.query)
    acc = accuracy(logits, torch.from_numpy(data.test.y[episode.query]))
    return EpisodeResult(
        method, data.name, episode.k, episode.seed, acc, seconds, fitter.info, model if keep_model else None
    )


__all__ = ["Caches", "EpisodeResult", "make_task", "predict", "run_episode"]
