"""The training loop every ASR method runs in, and batched transcription.

The whole update lives in the method's ``step``, so a Ray Train worker runs the same loop on its
shard (tasks/asr/distributed.py): with ``world`` workers every global batch is
``batch_size * world`` utterances of the seeded permutation and worker ``rank`` takes its
slice (``shard``; the short last batch is split as evenly as possible, so no utterance is
dropped). The loss is a sum over utterances divided by the *global* batch size and the workers'
gradients are summed, so N workers see what one process sees with an N-times batch, even when
the slices differ in size (averaging per-worker means would weight a lone utterance double).
Batches are zero-padded to their longest utterance; the model's input statistics and CTC use
each utterance's own length.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
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
    utterances: int = 0  # this worker's
    utterances_total: int = 0  # all workers' (the global batches)
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


def shard(order: np.ndarray, lo: int, span: int, rank: int, world: int) -> np.ndarray:
    """Worker ``rank``'s slice of the global batch ``order[lo : lo + span]``: contiguous slices of
    ``span // world``; a shorter last batch is split as evenly as possible (the first
    ``len % world`` workers take one more), so every utterance is used once per epoch."""
    chunk = order[lo : lo + span]
    base, extra = divmod(len(chunk), world)
    start = rank * base + min(rank, extra)
    return chunk[start : start + base + (rank < extra)]


def fit(
    method: ASRMethod[Any],
    model: CTCRecogniser,
    rows: Sequence[Utterance],
    config: TrainConfig,
    rank: int = 0,
    world: int = 1,
    reduce_gradients: Callable[[list[torch.Tensor]], None] | None = None,
) -> FitResult:
    """Train ``model`` with ``method`` on ``rows`` (worker ``rank`` of ``world``: its slice of
    every global batch of ``batch_size * world`` utterances). The loss is normalised by the
    global batch's size and ``reduce_gradients`` sums the workers' gradients before clipping, so
    N workers take exactly the steps of one process with an N-times batch (up to float
    summation order), the short last batch included. The epoch means of the logged losses
    (per-utterance means of this worker's slices) are kept."""
    torch.manual_seed(config.seed)
    method.setup(model, config, rank)
    if world > 1 and reduce_gradients is None:
        raise ValueError("fit: world > 1 needs reduce_gradients (the workers would drift apart)")
    method.reduce_gradients = reduce_gradients
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
        for lo in range(0, len(order), span):
            total = min(span, len(order) - lo)
            mine = shard(order, lo, span, rank, world)
            if len(mine) == 0:  # fewer utterances than workers: still join the gradient sum
                method.update(model, None)
            else:
                batch = make_batch([rows[i] for i in mine])
                batch.total = total
                for k, v in method.step(model, batch).items():
                    sums[k] = sums.get(k, 0.0) + v * total / len(mine)
                n += 1
                result.utterances += len(batch.targets)
            result.utterances_total += total
            steps += 1
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
        for ids in greedy_decode(model(wave, samples), model.output_lengths(samples)):
            out.append((decode(ids), decoder(ids)))
    return out
