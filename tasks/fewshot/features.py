"""Pre-pool feature maps of a frozen trunk, computed once per image and reused.

Every method but full fine-tuning leaves the trunk frozen, so an image's feature map is the
same in every episode, epoch and method: :class:`FeatureCache` computes the maps of the pool
images an episode asks for (in batches, in eval mode, without gradients) and keeps them in
memory by pool index. With ``enabled=False`` it recomputes on every call (the benchmark's
"without caching" arm; also what training on augmented images would need). Maps are float32
(N, C, h, w): 1280 × 3 × 3 floats = 46 KB per image for the ImageNet backbones at 96 px.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class FeatureCache:
    """Feature maps of ``images`` (float32 NCHW in [0, 1]) under ``trunk``, by index."""

    def __init__(self, trunk: nn.Module, images: np.ndarray, batch_size: int = 64, enabled: bool = True) -> None:
        self.trunk = trunk
        self.images = images
        self.batch_size = int(batch_size)
        self.enabled = enabled
        self._maps: dict[int, torch.Tensor] = {}
        self.computed = 0  # images pushed through the trunk so far (the benchmark reads it)

    @torch.no_grad()
    def compute(self, idx: np.ndarray) -> torch.Tensor:
        """Maps of ``images[idx]``, always recomputed."""
        was = self.trunk.training
        self.trunk.eval()
        try:
            out = [
                self.trunk(torch.from_numpy(np.ascontiguousarray(self.images[idx[i : i + self.batch_size]])))
                for i in range(0, len(idx), self.batch_size)
            ]
        finally:
            self.trunk.train(was)
        self.computed += len(idx)
        return torch.cat(out) if out else torch.empty(0)

    def maps(self, idx: np.ndarray) -> torch.Tensor:
        """Maps of ``images[idx]`` in that order; cached ones are reused."""
        idx = np.asarray(idx, dtype=np.int64)
        if not self.enabled:
            return self.compute(idx)
        missing = np.array(sorted({int(i) for i in idx} - set(self._maps)), dtype=np.int64)
        if len(missing):
            for i, m in zip(missing.tolist(), self.compute(missing), strict=True):
                self._maps[i] = m
        return torch.stack([self._maps[int(i)] for i in idx])

    def __len__(self) -> int:
        return len(self._maps)


__all__ = ["FeatureCache"]
