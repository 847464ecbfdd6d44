"""The ASR training-method contract and registry.

A method is one module in this package with ``@ASR_METHODS.register("<name>", options=...)``
on an ``ASRMethod`` subclass. ``tasks/asr/train.fit`` calls ``setup(model, config)`` once and
``step(model, batch)`` per batch; the whole update lives in ``step`` so a Ray Train worker can
run the same loop on its shard later (as the fairness and robustness trainers do).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import torch
from pydantic import Field

from trustflow.models.speech.ctc import CTCRecogniser, ctc_loss
from trustflow.registry import Entry, Options, Registry
from trustflow.tasks.asr.shifts.base import SPEECH_SHIFTS, Shift

OptionsT = TypeVar("OptionsT", bound=Options)


class TrainConfig(Options):
    """What every method's training shares (its own knobs are its ``Options``)."""

    epochs: int = Field(default=10, ge=0)
    batch_size: int = Field(default=8, ge=1)
    lr: float = Field(default=2e-3, gt=0)
    weight_decay: float = Field(default=1e-4, ge=0)
    max_steps: int | None = Field(default=None, ge=1)
    clip_norm: float = Field(default=5.0, gt=0)
    seed: int = 0


@dataclass
class Batch:
    wave: torch.Tensor  # (B, T) zero-padded, 16 kHz
    samples: torch.Tensor  # (B,) valid samples
    targets: list[list[int]]  # phone ids, no blanks
    total: int | None = None  # utterances in the global batch (data-parallel); None: this batch's size


class ASRMethod(ABC, Generic[OptionsT]):
    name: ClassVar[str]
    Options: ClassVar[type[Options]]

    def __init__(self, options: OptionsT) -> None:
        self.options = options
        self.config = TrainConfig()
        self.optimizer: torch.optim.Optimizer | None = None
        self.gen = torch.Generator().manual_seed(0)
        # data-parallel training sums every gradient over the workers here (tasks/asr/train.fit)
        self.reduce_gradients: Callable[[list[torch.Tensor]], None] | None = None

    def setup(self, model: CTCRecogniser, config: TrainConfig, rank: int = 0) -> None:
        """Optimizer and the method's random stream (seeded from the config; each data-parallel
        worker draws its own augmentations, rank 0 the same as one process)."""
        self.config = config
        self.gen = torch.Generator().manual_seed(config.seed + 7 + 1009 * rank)
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)

    @abstractmethod
    def step(self, model: CTCRecogniser, batch: Batch) -> dict[str, float]:
        """One update on ``batch``; returns the losses to log."""

    def update(self, model: CTCRecogniser, loss: torch.Tensor | None) -> None:
        """Backward, sum the gradients over the workers, clip the *global* gradient, step.

        ``loss=None`` is a worker with no utterances in this global batch: it contributes zero
        gradients but still joins the reduction and applies the same step (no deadlock, no drift)."""
        assert self.optimizer is not None, "setup() first"
        self.optimizer.zero_grad(set_to_none=True)
        params = [p for p in model.parameters() if p.requires_grad]
        if loss is not None:
            loss.backward()
        if self.reduce_gradients is not None:
            for p in params:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
            self.reduce_gradients([p.grad for p in params if p.grad is not None])
        torch.nn.utils.clip_grad_norm_(params, self.config.clip_norm)
        self.optimizer.step()


def batch_loss(
    model: CTCRecogniser, wave: torch.Tensor, samples: torch.Tensor, targets: list[list[int]], total: int | None = None
) -> torch.Tensor:
    """CTC of the batch, normalised by ``total`` utterances (the global batch; see ``ctc_loss``)."""
    return ctc_loss(model(wave, samples), model.output_lengths(samples), targets, total=total)


class AugmentChain:
    """WavAugment-style: per batch, one shift drawn from ``specs`` (with probability ``p``, else none).

    Lengths are rescaled when a shift changes them (speed)."""

    def __init__(self, specs: tuple[str, ...], p: float) -> None:
        self.shifts: list[Shift[Any]] = [SPEECH_SHIFTS.create(s) for s in specs]
        self.p = p

    def __call__(
        self, wave: torch.Tensor, samples: torch.Tensor, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.shifts or float(torch.rand((), generator=gen)) >= self.p:
            return wave, samples
        shift = self.shifts[int(torch.randint(0, len(self.shifts), (), generator=gen))]
        out = shift(wave, gen)
        if out.shape[-1] != wave.shape[-1]:
            samples = (samples.to(torch.float64) * out.shape[-1] / wave.shape[-1]).round().long()
        return out, samples


DEFAULT_CHAIN = ("noise?snr_db=10", "reverb", "band-reject", "time-drop", "pitch?semitones=2", "pitch?semitones=-2")


def _build(entry: Entry[type[ASRMethod[Any]]], options: Any) -> ASRMethod[Any]:
    return entry.obj(options)


ASR_METHODS: Registry[type[ASRMethod[Any]]] = Registry(
    "asr method", plugins="trustflow.tasks.asr.methods", factory=_build
)
