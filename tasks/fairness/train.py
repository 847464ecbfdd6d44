"""The training loop every fairness method runs in, and batched inference.

One process, or one Ray Train worker of several (``tasks/fairness/distributed.py``): the whole
update lives in the method's ``step``; with ``world`` > 1 every worker walks the same shuffled
order and takes its own equal-length slice (so all workers run the same number of steps, which
the gradient all-reduce needs), and ``after_setup`` is where the distributed wiring hooks the
method's optimizers.
Batches are tokenized on the fly with dynamic padding (short texts stay cheap).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from trustflow.models.text.encoder import TextClassifier
from trustflow.tasks.fairness.data import TextData
from trustflow.tasks.fairness.methods.base import Batch, FairnessMethod, Tokenize, TrainConfig
from trustflow.tasks.fairness.model import FairModel

log = logging.getLogger(__name__)


@dataclass
class FitResult:
    model: FairModel
    method: FairnessMethod[Any]
    history: list[dict[str, float]] = field(default_factory=list)
    samples: int = 0
    seconds: float = 0.0

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.seconds if self.seconds else 0.0


def make_batch(data: TextData, idx: np.ndarray, tokenize: Tokenize) -> Batch:
    enc = tokenize([data.texts[i] for i in idx])
    return Batch(enc["input_ids"], enc["attention_mask"], torch.as_tensor(data.y[idx]), torch.as_tensor(data.z[idx]))


def fit(
    method: FairnessMethod[Any],
    classifier: TextClassifier,
    data: TextData,
    tokenize: Tokenize,
    config: TrainConfig,
    *,
    rank: int = 0,
    world: int = 1,
    after_setup: Callable[[FairnessMethod[Any], FairModel], None] | None = None,
    finish: bool = True,
) -> FitResult:
    """Train ``classifier`` with ``method`` on ``data``; the epoch means of the step losses are kept.

    ``rank``/``world``: this worker's slice of every epoch's order; ``finish=False`` skips the
    method's post-training step (a Ray Train worker other than rank 0: INLP's projection is
    computed once, on the whole training set, by rank 0)."""
    torch.manual_seed(config.seed)
    classifier.freeze_lower(config.trainable_layers)
    train = method.prepare(data)
    model = method.setup(classifier, train, config)
    if after_setup is not None:
        after_setup(method, model)
    rng = np.random.default_rng(config.seed)
    result = FitResult(model, method)
    steps = 0
    start = time.perf_counter()
    for epoch in range(config.epochs):
        model.train()
        sums: dict[str, float] = {}
        n = 0
        order = rng.permutation(len(train))
        if world > 1:
            order = order[: len(order) // world * world][rank::world]
        for lo in range(0, len(order) - 1, config.batch_size):
            idx = order[lo : lo + config.batch_size]
            if len(idx) < 2:
                continue
            for k, v in method.step(model, make_batch(train, idx, tokenize)).items():
                sums[k] = sums.get(k, 0.0) + v
            n += 1
            steps += 1
            result.samples += len(idx)
            if config.max_steps is not None and steps >= config.max_steps:
                break
        result.history.append({"epoch": float(epoch), **{k: v / max(n, 1) for k, v in sums.items()}})
        log.info("%s epoch %d: %s", method.name, epoch, result.history[-1])
        if config.max_steps is not None and steps >= config.max_steps:
            break
    result.seconds = time.perf_counter() - start
    model.eval()
    if finish:
        result.model = method.finish(model, train, tokenize)
    result.model.eval()
    return result


@torch.no_grad()
def predict(
    model: FairModel, data: TextData, tokenize: Tokenize, batch_size: int = 128
) -> tuple[np.ndarray, np.ndarray]:
    """(logits [N, C], representations [N, H]) in eval mode."""
    model.eval()
    logits, reps = [], []
    for lo in range(0, len(data), batch_size):
        enc = tokenize(data.texts[lo : lo + batch_size])
        rep = model.represent(enc["input_ids"], enc["attention_mask"])
        reps.append(rep.numpy())
        logits.append(model.classifier.classify(rep).numpy())
    return np.concatenate(logits), np.concatenate(reps)


def representations(model: FairModel, data: TextData, tokenize: Tokenize, batch_size: int = 128) -> np.ndarray:
    return predict(model, data, tokenize, batch_size)[1]
