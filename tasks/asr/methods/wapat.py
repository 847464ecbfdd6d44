"""WAPAT: WavAugment-guided phoneme adversarial training (arXiv 2307.12498).

The adversary perturbs the *phoneme representation* F = model.features(wave) (the output of
the convolutional subsampling, as the paper perturbs its conv feature extractor's output)
inside an l-inf ball of radius ``eps``. Its direction is guided by a WavAugment-augmented copy
of the utterance:

1. aug = one random shift of the batch (the WavAugment chain); F_aug = features(aug),
   p_aug = head(F_aug) (detached for the guidance).
2. ``steps`` signed-gradient steps of size ``lr`` on delta, ascending
   CTC(head(F + delta)) - ``guidance``·KL(p_aug || head(F + delta)): raise the task loss while
   staying near what the model predicts for the augmented view, so the adversarial point moves
   toward realistic shifts rather than anywhere in the ball. With ``mix_aug_grad`` the step
   direction is the mean of that gradient and the CTC gradient at F_aug (both normalised), as
   the authors' code averages the two; it needs the augmentation to keep the length, and falls
   back to the first gradient when it does not (speed change).
3. loss = (1 - ``adv_weight``)·CTC(head(F_branch)) + ``adv_weight``·CTC(head(F + delta)) with
   delta detached and F carrying gradients, so the feature extractor also learns from the
   adversarial branch. ``clean_branch="augmented"`` trains the first term on F_aug, as the
   authors' code does; the default ``clean`` follows the paper's text (CTC on clean + adversarial).

Not reproduced (documented in docs/pipelines/asr.md): the code's within-batch permutation of
the attack targets, the clip of F_adv to [-1, 1] (our features are not bounded), the cosine
term (replaced by the KL the paper describes).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from trustflow.models.speech.ctc import CTCRecogniser, ctc_loss
from trustflow.registry import Options
from trustflow.tasks.asr.methods.base import ASR_METHODS, DEFAULT_CHAIN, ASRMethod, AugmentChain, Batch, TrainConfig


class WAPATOptions(Options):
    eps: float = Field(default=0.01, gt=0)
    lr: float | None = Field(default=None, gt=0)  # attack step; None: eps (one step reaches the ball's edge)
    steps: int = Field(default=1, ge=1)
    guidance: float = Field(default=1.0, ge=0)  # weight of the KL to the augmented view
    mix_aug_grad: bool = True
    adv_weight: float = Field(default=0.5, ge=0, le=1)
    clean_branch: Literal["clean", "augmented"] = "clean"
    chain: tuple[str, ...] = DEFAULT_CHAIN
    p: float = Field(default=1.0, ge=0, le=1)


def _unit(g: torch.Tensor) -> torch.Tensor:
    return g / g.flatten(1).norm(dim=1).clamp_min(1e-12)[:, None, None]


def phoneme_adversary(
    model: CTCRecogniser,
    features: torch.Tensor,
    out_lengths: torch.Tensor,
    targets: list[list[int]],
    eps: float,
    lr: float,
    steps: int,
    guide: torch.Tensor | None = None,
    guidance: float = 0.0,
    aug_grad: torch.Tensor | None = None,
) -> torch.Tensor:
    """delta (detached) with |delta|_inf <= eps that raises the CTC loss of head(features + delta)."""
    base = features.detach()
    delta = torch.zeros_like(base)
    for _ in range(steps):
        delta.requires_grad_(True)
        lp = model.head(base + delta)
        obj = ctc_loss(lp, out_lengths, targets)
        if guide is not None and guidance > 0:
            obj = obj - guidance * torch.nn.functional.kl_div(lp, guide, log_target=True, reduction="batchmean")
        (grad,) = torch.autograd.grad(obj, delta)
        if aug_grad is not None:
            grad = (_unit(grad) + _unit(aug_grad)) / 2
        delta = (delta.detach() + lr * grad.sign()).clamp(-eps, eps)
    return delta.detach()


@ASR_METHODS.register("wapat", options=WAPATOptions)
class WAPAT(ASRMethod[WAPATOptions]):
    def setup(self, model: CTCRecogniser, config: TrainConfig, rank: int = 0) -> None:
        super().setup(model, config, rank)
        self.chain = AugmentChain(self.options.chain, self.options.p)

    def step(self, model: CTCRecogniser, batch: Batch) -> dict[str, float]:
        o = self.options
        aug_wave, aug_samples = self.chain(batch.wave, batch.samples, self.gen)
        feats = model.features(batch.wave, batch.samples)
        lengths = model.output_lengths(batch.samples)
        feats_aug = model.features(aug_wave, aug_samples)
        lp_aug = model.head(feats_aug)
        aug_lengths = model.output_lengths(aug_samples)
        aug_grad = None
        if o.mix_aug_grad and feats_aug.shape == feats.shape:
            probe = feats_aug.detach().requires_grad_(True)
            (aug_grad,) = torch.autograd.grad(ctc_loss(model.head(probe), aug_lengths, batch.targets), probe)
        guide = lp_aug.detach() if lp_aug.shape[1] == feats.shape[1] else None  # same frames: KL is defined
        delta = phoneme_adversary(
            model, feats, lengths, batch.targets, o.eps, o.lr or o.eps, o.steps, guide, o.guidance, aug_grad
        )
        adv = ctc_loss(model.head(feats + delta), lengths, batch.targets, total=batch.total)
        first = (
            ctc_loss(lp_aug, aug_lengths, batch.targets, total=batch.total)
            if o.clean_branch == "augmented"
            else ctc_loss(model.head(feats), lengths, batch.targets, total=batch.total)
        )
        loss = (1 - o.adv_weight) * first + o.adv_weight * adv
        self.update(model, loss)
        return {"ctc": first.item(), "adv": adv.item()}
