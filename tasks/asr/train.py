"""The training loop every ASR method runs in, and batched transcription.

Single process here; the whole update lives in the method's ``step`` so a Ray Train worker can
run the same loop on its shard (phase 2 wires ``TorchTrainer`` as tasks/robustness does).
Batches are zero-padded to their longest utterance; CTC uses each utterance's own length.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
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


def fit(method: ASRMethod[Any], model: CTCRecogniser, rows: Sequence[Utterance], config: TrainConfig) -> FitResult:
    """Train ``model`` with ``method`` on ``rows``; the epoch means of the step losses are kept."""
    torch.manual_seed(config.seed)
    method.setup(model, config)
    rng = np.random.default_rng(config.seed)
    result = FitResult(model, method)
    steps = 0
    start = time.perf_counter()
    for epoch in range(config.epochs):
        model.train()
        sums: dict[str, float] = {}
        n = 0
        order = rng.permutation(len(rows))
        for lo in range(0, len(order), config.batch_size):
            batch = make_batch([rows[i] for i in order[lo : lo + config.batch_size]])
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
