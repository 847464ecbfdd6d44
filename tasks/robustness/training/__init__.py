"""Adversarial training methods (EasyRobust-style), one module each, registered in
``TRAINING_METHODS`` and found automatically: standard, pgd_at, trades, fgsm_rs, fgsm_law.

``make_method(spec, **options)`` builds one with validated options; ``method.step(model,
x, y, state)`` gives the loss of a batch; ``loop.train_one_epoch`` runs an epoch. See
``base`` for the contract (and how to add a method), ``ema`` for FGSM-LAW's auto weight
averaging and ``co_detection`` for catastrophic-overfitting checks.
"""

from __future__ import annotations

from trustflow.tasks.robustness.training.base import (
    TRAINING_METHODS,
    StepOutput,
    TrainingMethod,
    TrainingOptions,
    TrainState,
    features_and_logits,
    find_head,
    make_method,
    unwrap,
)
from trustflow.tasks.robustness.training.co_detection import (
    CatastrophicOverfittingDetector,
    Verdict,
    robust_accuracy_probe,
)
from trustflow.tasks.robustness.training.ema import AutoWeightAveraging
from trustflow.tasks.robustness.training.loop import (
    PerStepLR,
    lr_schedule,
    lr_schedule_cyclic,
    lr_schedule_piecewise,
    train_one_epoch,
)

__all__ = [
    "TRAINING_METHODS",
    "AutoWeightAveraging",
    "CatastrophicOverfittingDetector",
    "PerStepLR",
    "StepOutput",
    "TrainState",
    "TrainingMethod",
    "TrainingOptions",
    "Verdict",
    "features_and_logits",
    "find_head",
    "lr_schedule",
    "lr_schedule_cyclic",
    "lr_schedule_piecewise",
    "make_method",
    "robust_accuracy_probe",
    "train_one_epoch",
    "unwrap",
]
