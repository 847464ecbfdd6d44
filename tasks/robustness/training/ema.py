"""Auto weight averaging (the "AW" of FGSM-LAW): an EMA of the weights, gated per batch.

FGSM-LAW keeps an exponential moving average of the model and updates it only on
batches that look healthy: while single-step adversarial training is sound, accuracy on
the FGSM examples stays well below clean accuracy. When catastrophic overfitting starts,
the model learns to defeat FGSM specifically, adversarial accuracy jumps towards clean
accuracy, and averaging those weights in would spread the damage. Hence the gate

    ratio = (adversarial correct) / (clean correct)  <  threshold   →  update

with counts on the training batch itself (clean correct taken as at least 1, so a batch
the model gets entirely wrong has ratio 0). The decay warms up with the number ``n`` of
updates already applied, ``decay = min(decay_max, (1 + n) / (10 + n))`` (0.1 for the
first update), so the average forgets its random initialisation quickly. Parameters are
averaged, ``ema = decay · ema + (1 − decay) · model``; buffers (BatchNorm running
statistics, counters) are copied from the model, so the average is always consistent with
the statistics of recent weights. Evaluate on ``.model`` (kept in eval mode, no grads).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn as nn

from trustflow.tasks.robustness.training.base import unwrap


class AutoWeightAveraging:
    """EMA copy of ``model`` updated only when ``should_update`` says the batch is healthy."""

    def __init__(self, model: nn.Module, decay_max: float = 0.999, threshold: float = 0.82) -> None:
        if not 0.0 <= decay_max < 1.0:
            raise ValueError(f"decay_max must be in [0, 1), got {decay_max}")
        self.decay_max = float(decay_max)
        self.threshold = float(threshold)
        self.n_updates = 0
        src = unwrap(model)
        self.model = copy.deepcopy(src)
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
            p.grad = None

    def decay(self) -> float:
        """The decay the next update will use: min(decay_max, (1 + n) / (10 + n))."""
        n = self.n_updates
        return min(self.decay_max, (1.0 + n) / (10.0 + n))

    @staticmethod
    def ratio(logits_clean: torch.Tensor, logits_adv: torch.Tensor, y: torch.Tensor) -> float:
        """(adversarial correct) / max(clean correct, 1) on this batch."""
        clean = int((logits_clean.argmax(1) == y).sum())
        adv = int((logits_adv.argmax(1) == y).sum())
        return adv / max(clean, 1)

    def should_update(self, logits_clean: torch.Tensor, logits_adv: torch.Tensor, y: torch.Tensor) -> bool:
        return self.ratio(logits_clean, logits_adv, y) < self.threshold

    @torch.no_grad()
    def update(self, model: nn.Module) -> float:
        """Average ``model``'s parameters in, copy its buffers; returns the decay used."""
        d = self.decay()
        src = unwrap(model)
        src_params = dict(src.named_parameters())
        for name, p in self.model.named_parameters():
            q = src_params[name].detach()
            if p.dtype.is_floating_point:
                p.mul_(d).add_(q.to(p.dtype), alpha=1.0 - d)
            else:
                p.copy_(q)
        src_buffers = dict(src.named_buffers())
        for name, b in self.model.named_buffers():
            if name in src_buffers:
                b.copy_(src_buffers[name])
        self.n_updates += 1
        return d

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "n_updates": self.n_updates}

    def load_state_dict(self, sd: Mapping[str, Any]) -> None:
        self.model.load_state_dict(sd["model"])
        self.n_updates = int(sd["n_updates"])
