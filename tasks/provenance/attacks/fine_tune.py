"""Fine-tuning on the attacker's data (all weights, SGD); a new head when the class count differs."""

from __future__ import annotations

from torch import nn

from trustflow.models.fingerprint.module import pseudo_class
from trustflow.tasks.provenance.attacks.base import (
    OWNERSHIP_ATTACKS,
    AttackContext,
    OwnershipAttack,
    TrainAttackOptions,
)
from trustflow.tasks.provenance.train import train_classifier


def _head_classes(model: nn.Module) -> int:
    n = pseudo_class(model)
    return int(getattr(model, "num_classes", 0)) if n is None else n


def fine_tune(model: nn.Module, options: TrainAttackOptions, context: AttackContext) -> nn.Module:
    """Fine-tune ``model`` in place (the attacker does not know about the anti-overwriting term)."""
    data = context.data(options.dataset, "train", options.limit)
    if data.num_classes != _head_classes(model):
        linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
        head = model.get_submodule(linears[-1])
        assert isinstance(head, nn.Linear)
        parent, _, child = linears[-1].rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, nn.Linear(head.in_features, data.num_classes))
        setattr(model, "num_classes", data.num_classes)  # noqa: B010 - a Classifier attribute
    train_classifier(
        model,
        data,
        epochs=options.epochs,
        lr=options.lr,
        batch_size=options.batch_size,
        fingerprint=False,
        seed=options.seed,
        max_steps=options.max_steps,
    )
    return model.eval()


@OWNERSHIP_ATTACKS.register("fine_tune", options=TrainAttackOptions)
class FineTune(OwnershipAttack[TrainAttackOptions]):
    def apply(self, model: nn.Module, context: AttackContext) -> nn.Module:
        return fine_tune(self.copy(model), self.options, context)
