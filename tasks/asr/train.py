"""The training loop every ASR method runs in, and batched transcription.

The whole update lives in the method's ``step``, so a Ray Train worker runs the same loop on its
shard (tasks/asr/distributed.py): with ``world`` workers every global batch is
``batch_size * world`` utterances of the seeded permutation and worker ``rank`` takes its
``batch_size`` slice, so N workers with averaged gradients see what one process sees with an
N-times batch (the CTC loss is a per-utterance mean).
Batches are zero-padded to their longest utterance; CTC uses each utterance's own length.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from trustflow.data.speech.phones import decode, encode
from trustflow.data.speech.utterances import Utterance
from trustflow.models.speech.ctc import CTCRecogniser, LexiconDecoder, greedy_decode
from trustflow.tasks.asr.methods.base import ASRMethod, Batch, TrainConfig

log = logging.getLogger(__name__)


@dataclass
class FitResult:
    model: CTCRecogniser
    method: ASRMethod[Any]
    history: list[dict[str, float]] = field(default_factory=list)
    utterances: int = 0
    seconds: float = 0.0

    @property
    def utterances_per_s(self) -> float:
        return self.utterances / self.seconds if self.seconds else 0.0


def pad(waves: Sequence[np.ndarray | torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    samples = torch.tensor([len(w) for w in waves], dtype=torch.long)
    out = torch.zeros(len(waves), int(samples.max()))
    for i, w in enumerate(waves):
        out[i, : len(w)] = torch.as_tensor(w, dtype=torch.float32)
    return out, samples


def make_batch(rows: Sequence[Utterance]) -> Batch:
    wave, samples = pad([r.audio for r in rows])
    return Batch(wave, samples, [encode(r.phones) for r in rows])


def fit(
    method: ASRMethod[Any],
    model: CTCRecogniser,
    rows: Sequence[Utterance],
    config: TrainConfig,
    rank: int = 0,
    world: int = 1,
    after_setup: Callable[[ASRMethod[Any]], None] | None = None,
) -> FitResult:
    """Train ``model`` with ``method`` on ``rows`` (worker ``rank`` of ``world``: its slice of
    every global batch); the epoch means of the step losses are kept. ``after_setup`` sees the
    method once its optimizer exists (the distributed loop hooks gradient averaging there)."""
    torch.manual_seed(config.seed)
    method.setup(model, config)
    if after_setup is not None:
        after_setup(method)
    span = config.batch_size * world
    rng = np.random.default_rng(config.seed)
    result = FitResult(model, method)
    steps = 0
    start = time.perf_counter()
    for epoch in range(config.epochs):
        model.train()
        sums: dict[str, float] = {}
        n = 0
        order = rng.permutation(len(rows))
        for lo in range(0, len(order) - (world - 1) * config.batch_size, span):
            mine = order[lo : lo + span][rank * config.batch_size : (rank + 1) * config.batch_size]
            if len(mine) == 0:
                continue
            batch = make_batch([rows[i] for i in mine])
            for k, v in method.step(model, batch).items():
                sums[k] = sums.get(k, 0.0) + v
            n += 1
            steps += 1
            result.utterances += len(batch.targets)
            if config.max_steps is not None and steps >= config.max_steps:
                break
        result.history.append({"epoch": float(epoch), **{k: v / max(n, 1) for k, v in sums.items()}})
        log.info("%s epoch %d: %s", method.name, epoch, result.history[-1])
        if config.max_steps is not None and steps >= config.max_steps:
            break
    result.seconds = time.perf_counter() - start
    model.spec_augment = None
    model.eval()
    return result


@torch.no_grad()
def transcribe(
    model: CTCRecogniser, waves: Sequence[np.ndarray | torch.Tensor], decoder: LexiconDecoder, batch_size: int = 16
) -> list[tuple[list[str], str]]:
    """(phones, words) per waveform, greedy CTC then the lexicon decoder."""
    model.eval()
    out: list[tuple[list[str], str]] = []
    for lo in range(0, len(waves), batch_size):
        wave, samples = pad(waves[lo : lo + batch_size])
        for ids in greedy_decode(model(wave), model.output_lengths(samples)):
            out.append((decode(ids), decoder(ids)))
    return out
