"""Standard (non-adversarial) training: cross-entropy on the clean batch. The baseline."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from trustflow.tasks.robustness.training.base import (
    TRAINING_METHODS,
    StepOutput,
    TrainingMethod,
    TrainingOptions,
    TrainState,
)


@TRAINING_METHODS.register("standard", options=TrainingOptions)
class Standard(TrainingMethod[TrainingOptions]):
    """Plain CE; ``eps`` and the attack options are accepted and ignored."""

    def step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, state: TrainState) -> StepOutput:
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        return StepOutput(loss=loss, logits_clean=logits.detach(), logits_adv=None, stats={})
