"""Waveform adversarial training: PGD in an l-inf ball of radius ``eps`` around the audio.

The adversarial waveform maximises the CTC loss (``steps`` signed-gradient steps of ``alpha``,
random start inside the ball); the update is ``(1 - adv_weight)``·CTC(clean) +
``adv_weight``·CTC(adversarial) (the paper's "AdvEx" baseline). eps is in sample units of a
[-1, 1] waveform: 0.002 is about -54 dBFS, audible only as faint hiss."""

from __future__ import annotations

import torch
from pydantic import Field

from trustflow.models.speech.ctc import CTCRecogniser
from trustflow.registry import Options
from trustflow.tasks.asr.methods.base import ASR_METHODS, ASRMethod, Batch, batch_loss


class WavePGDOptions(Options):
    eps: float = Field(default=0.002, gt=0)
    alpha: float | None = Field(default=None, gt=0)  # step; None: 2.5 * eps / steps
    steps: int = Field(default=3, ge=1)
    adv_weight: float = Field(default=0.5, ge=0, le=1)


def wave_pgd(
    model: CTCRecogniser, batch: Batch, eps: float, alpha: float, steps: int, gen: torch.Generator
) -> torch.Tensor:
    """The adversarial waveform (detached), inside the eps-ball of ``batch.wave``."""
    was_training = model.training
    model.eval()  # no dropout / batch-norm updates while attacking
    delta = (torch.rand(batch.wave.shape, generator=gen) * 2 - 1) * eps
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = batch_loss(model, batch.wave + delta, batch.samples, batch.targets)
        (grad,) = torch.autograd.grad(loss, delta)
        delta = (delta.detach() + alpha * grad.sign()).clamp(-eps, eps)
    model.train(was_training)
    return (batch.wave + delta).detach()


@ASR_METHODS.register("wave-pgd", options=WavePGDOptions)
class WavePGD(ASRMethod[WavePGDOptions]):
    def step(self, model: CTCRecogniser, batch: Batch) -> dict[str, float]:
        o = self.options
        adv = wave_pgd(model, batch, o.eps, o.alpha or 2.5 * o.eps / o.steps, o.steps, self.gen)
        clean = batch_loss(model, batch.wave, batch.samples, batch.targets, batch.total)
        attacked = batch_loss(model, adv, batch.samples, batch.targets, batch.total)
        loss = (1 - o.adv_weight) * clean + o.adv_weight * attacked
        self.update(model, loss)
        return {"ctc": clean.item(), "adv": attacked.item()}
