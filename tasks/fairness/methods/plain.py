"""Plain fine-tuning: cross-entropy on the task, nothing about the attribute (the reference)."""

from __future__ import annotations

from trustflow.registry import NoOptions
from trustflow.tasks.fairness.methods.base import FAIRNESS_METHODS, Batch, FairnessMethod, task_loss
from trustflow.tasks.fairness.model import FairModel


@FAIRNESS_METHODS.register("plain")
class Plain(FairnessMethod[NoOptions]):
    def step(self, model: FairModel, batch: Batch) -> dict[str, float]:
        assert self.optimizer is not None
        loss = task_loss(model, batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"task": loss.item()}
