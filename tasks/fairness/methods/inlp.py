"""INLP-style debiasing (Ravfogel et al. 2020): project the attribute out of frozen features.

After plain fine-tuning (``epochs`` of the training config; 0 keeps the pretrained
encoder), the pooled features of the training set are frozen; ``iterations`` times a linear
probe (logistic regression) is fit to predict the attribute from the projected features and
its weight directions are added to the removed subspace; P = I − B Bᵀ (B an orthonormal basis
of every direction found). The head is then refit on P·h. The encoder is not changed again:
it is a post-hoc method, and the probes being *linear* is its known limit (a non-linear
reader can still find the attribute).
"""

from __future__ import annotations

import numpy as np
import torch
from pydantic import Field

from trustflow.registry import Options
from trustflow.tasks.fairness.data import TextData
from trustflow.tasks.fairness.methods.base import FAIRNESS_METHODS, Batch, FairnessMethod, Tokenize, task_loss
from trustflow.tasks.fairness.model import FairModel


class InlpOptions(Options):
    iterations: int = Field(default=10, ge=1, le=200)
    head_steps: int = Field(default=300, ge=1)


def nullspace_projection(x: np.ndarray, z: np.ndarray, iterations: int, seed: int = 0) -> np.ndarray:
    """P (H×H, symmetric) removing every direction linear probes used to predict ``z`` from ``x``."""
    from sklearn.linear_model import LogisticRegression

    dim = x.shape[1]
    directions: list[np.ndarray] = []
    p = np.eye(dim)
    mu, sd = x.mean(0), x.std(0) + 1e-6
    for _ in range(iterations):
        probe = LogisticRegression(max_iter=300, random_state=seed).fit(((x - mu) / sd) @ p, z)
        directions.extend(probe.coef_ / sd)  # back to the unscaled feature space
        basis, s, _ = np.linalg.svd(np.array(directions).T, full_matrices=False)
        basis = basis[:, s > 1e-8 * s.max()]
        p = np.eye(dim) - basis @ basis.T
    return p


@FAIRNESS_METHODS.register("inlp", options=InlpOptions, example="inlp?iterations=10")
class Inlp(FairnessMethod[InlpOptions]):
    def step(self, model: FairModel, batch: Batch) -> dict[str, float]:
        assert self.optimizer is not None
        loss = task_loss(model, batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"task": loss.item()}

    def finish(self, model: FairModel, data: TextData, tokenize: Tokenize) -> FairModel:
        from trustflow.tasks.fairness.train import representations

        feats = representations(model, data, tokenize, batch_size=self.config.batch_size * 2)
        p = torch.tensor(
            nullspace_projection(feats, data.z, self.options.iterations, self.config.seed), dtype=torch.float32
        )
        model.set_projection(p)
        x = torch.tensor(feats, dtype=torch.float32) @ p
        y = torch.tensor(data.y)
        head = model.classifier.head
        opt = torch.optim.Adam(head.parameters(), lr=self.config.head_lr)
        for _ in range(self.options.head_steps):
            loss = torch.nn.functional.cross_entropy(head(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return model
