"""Linear probe: multinomial logistic regression on the frozen, normalised pooled features.

As CLIP's linear-probe protocol: scikit-learn's L-BFGS logistic regression, its inverse
regularisation C chosen on the validation shots from a log grid. The fitted weights become a
``nn.Linear`` so the probe is a torch model (gradients for the attacks).
"""

from __future__ import annotations

import numpy as np
import torch
from pydantic import Field
from torch import nn

from trustflow.registry import Options
from trustflow.tasks.fewshot.methods.base import (
    FEWSHOT_METHODS,
    AdaptConfig,
    AdaptedModel,
    FewShotMethod,
    FewShotTask,
    PoolFeatures,
    accuracy,
    pick,
)


class LinearProbeOptions(Options):
    c_grid: tuple[float, ...] = Field(default=(0.1, 1.0, 10.0, 100.0), min_length=1)
    max_iter: int = Field(default=500, ge=10)


class _Probe(nn.Module):
    def __init__(self, featurize: nn.Module, linear: nn.Linear) -> None:
        super().__init__()
        self.featurize, self.linear = featurize, linear

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.linear(self.featurize(maps))
        return out


@FEWSHOT_METHODS.register("linear_probe", options=LinearProbeOptions)
class LinearProbe(FewShotMethod[LinearProbeOptions]):
    def fit(self, task: FewShotTask, config: AdaptConfig) -> AdaptedModel:
        from sklearn.linear_model import LogisticRegression

        featurize = PoolFeatures(task.backbone.pool)
        with torch.no_grad():
            xs, xv = featurize(task.support_maps()).numpy(), featurize(task.val_maps()).numpy()
        ys, yv = task.support_y.numpy(), task.val_y.numpy()

        def train(c: float) -> LogisticRegression:
            return LogisticRegression(C=c, max_iter=self.options.max_iter).fit(xs, ys)

        c, val_acc = pick(list(self.options.c_grid), lambda c: float((train(c).predict(xv) == yv).mean()))
        clf = train(c)
        linear = nn.Linear(xs.shape[1], task.num_classes)
        coef, bias = clf.coef_, clf.intercept_
        if task.num_classes == 2:  # sklearn keeps one row for two classes: logits (−z/2, z/2)
            coef, bias = np.concatenate([-coef, coef]) / 2, np.concatenate([-bias, bias]) / 2
        with torch.no_grad():
            linear.weight.copy_(torch.as_tensor(coef, dtype=torch.float32))
            linear.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
        head = _Probe(featurize, linear)
        with torch.no_grad():
            self.info = {"C": c, "val_accuracy": accuracy(head(task.val_maps()), task.val_y)}
        return AdaptedModel(task.backbone.trunk, head, frozen_trunk=True)
