"""FGSM-LAW (Jia et al., "Revisiting and Exploring Efficient Fast Adversarial Training via
LAW: Lipschitz Regularization and Auto Weight Averaging").

One step, exactly:

1. start  x₀ = x + (ε/2) · sign(U(−1, 1))   (a random ±ε/2 per pixel, from
   ``state.generator``; clipped to [0, 1], so pixels at the border lose a side);
2. attack x' = clip_{ε-ball ∩ [0,1]}( x₀ + α · sign ∇ₓ CE(f(x₀), y) ),  α = ε by default
   (``perturb.fgsm`` with that start), model in train mode (``attack_mode``);
3. loss   LS-CE_s(f(x'), y)
          + λ · [ MSE(softmax f(x), softmax f(x')) + MSE(softmax φ(x), softmax φ(x')) ]
                ÷ ( MSE(x', x) + 0.125 )

where f are the logits, φ the penultimate features (flattened, softmax over them) and MSE
the mean over all elements (``F.mse_loss``). Gradients flow through both the clean and
the adversarial forward; the denominator is a constant (x' is detached).

The label smoothing follows the ``factor`` convention of public FGSM-LAW code
(``_label_smoothing(label, factor)``): the target puts
``smoothing`` on the true class and (1 − smoothing)/(K − 1) on each other class (so 0.7
keeps 70 % on the true class; this is *not* torch's ``label_smoothing=0.7``, which would
keep 37 % on CIFAR-10).

Features: :func:`base.features_and_logits` captures them with a hook during the normal
forward, so one forward gives both: the input of the classifier head (for an
``nn.Sequential``, everything but its last layer; for timm-style models exposing
``forward_features``, the pooled pre-logits that ``get_classifier()`` receives), or the
output of the submodule named by ``feature_module``.

Auto weight averaging: after each batch, if (adversarial correct / clean correct) on the
batch is below ``threshold`` the step sets ``stats["ema_updated"] = 1`` and
``after_optimizer_step`` folds the new weights into ``state.ema`` (see ``ema.py``); the
public FGSM-LAW code also updates after the optimizer step. Evaluate on ``state.ema.model``.

Presets (``preset`` fills λ, smoothing and threshold unless given explicitly):
cifar10: λ 12, smoothing 0.7, threshold 0.82 — cifar100: λ 42, smoothing 0.5,
threshold 0.55. Public FGSM-LAW code clips the gradient norm at 2.0: ``max_grad_norm``
(applied by the loop). Not included: extras found in some public FGSM-LAW code
(momentum initialisation of the perturbation, dynamic label relaxation, an adaptive λ,
averaging BatchNorm buffers instead of copying them), which are not part of FGSM-LAW as
specified for trustflow.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from pydantic import Field, model_validator

from trustflow.tasks.robustness.perturb import fgsm
from trustflow.tasks.robustness.training.base import (
    TRAINING_METHODS,
    StepOutput,
    TrainingMethod,
    TrainingOptions,
    TrainState,
    features_and_logits,
    model_mode,
    unwrap,
)
from trustflow.tasks.robustness.training.ema import AutoWeightAveraging

PRESETS: dict[str, dict[str, float]] = {
    "cifar10": {"lam": 12.0, "smoothing": 0.7, "threshold": 0.82},
    "cifar100": {"lam": 42.0, "smoothing": 0.5, "threshold": 0.55},
}


class FGSMLAWOptions(TrainingOptions):
    preset: Literal["cifar10", "cifar100"] = "cifar10"
    alpha: float | None = Field(None, gt=0.0, le=1.0, description="FGSM step; None: eps")
    lam: float = Field(12.0, ge=0.0, description="λ, weight of the Lipschitz term")
    smoothing: float = Field(0.7, gt=0.0, le=1.0, description="probability kept on the true class")
    threshold: float = Field(0.82, ge=0.0, description="EMA gate: update when adv/clean correct < this")
    lip_offset: float = Field(0.125, gt=0.0, description="added to MSE(x', x) in the denominator")
    ema: bool = True
    decay_max: float = Field(0.999, ge=0.0, lt=1.0)
    feature_module: str | None = None
    max_grad_norm: float | None = Field(2.0, gt=0.0)

    @model_validator(mode="before")
    @classmethod
    def _fill_from_preset(cls, data: Any) -> Any:
        if isinstance(data, dict):
            preset = PRESETS.get(data.get("preset", "cifar10"))
            if preset is not None:
                data = {**preset, **data}
        return data


def sign_start(x: torch.Tensor, eps: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """x + (ε/2)·sign(U(−1, 1)), clipped to [0, 1] (each sign ±1 with probability ½)."""
    u = torch.rand(x.shape, generator=generator, device="cpu").to(x.device)
    sign = torch.where(u < 0.5, -1.0, 1.0).to(x.dtype)
    return (x + 0.5 * eps * sign).clamp(0.0, 1.0)


def smoothed_cross_entropy(logits: torch.Tensor, y: torch.Tensor, smoothing: float) -> torch.Tensor:
    """CE against targets with ``smoothing`` on the true class and the rest spread evenly."""
    k = logits.shape[1]
    off = (1.0 - smoothing) / max(k - 1, 1)
    target = torch.full_like(logits, off)
    target.scatter_(1, y.view(-1, 1), smoothing)
    return -(target * F.log_softmax(logits, dim=1)).sum(1).mean()


def lipschitz_term(
    logits_clean: torch.Tensor,
    logits_adv: torch.Tensor,
    feats_clean: torch.Tensor,
    feats_adv: torch.Tensor,
    x: torch.Tensor,
    x_adv: torch.Tensor,
    offset: float = 0.125,
) -> torch.Tensor:
    """[MSE(σ(f), σ(f')) + MSE(σ(φ), σ(φ'))] / (MSE(x', x) + offset), σ = softmax over dim 1."""
    out = F.mse_loss(F.softmax(logits_clean, dim=1), F.softmax(logits_adv, dim=1))
    feat = F.mse_loss(F.softmax(feats_clean.flatten(1), dim=1), F.softmax(feats_adv.flatten(1), dim=1))
    return (out + feat) / (F.mse_loss(x_adv.detach(), x.detach()) + offset)


@TRAINING_METHODS.register("fgsm_law", options=FGSMLAWOptions)
class FGSMLAW(TrainingMethod[FGSMLAWOptions]):
    @property
    def step_size(self) -> float:
        return self.options.eps if self.options.alpha is None else self.options.alpha

    def init_state(self, model: nn.Module, seed: int = 0) -> TrainState:
        state = TrainState.create(seed)
        if self.options.ema:
            state.ema = AutoWeightAveraging(model, decay_max=self.options.decay_max, threshold=self.options.threshold)
        return state

    def random_start(self, x: torch.Tensor, state: TrainState) -> torch.Tensor:
        return sign_start(x, self.options.eps, state.generator)

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, state: TrainState) -> torch.Tensor:
        c = self.options
        m = unwrap(model)
        start = self.random_start(x, state)
        with model_mode(m, c.attack_mode):
            return fgsm(m, x, y, c.eps, alpha=self.step_size, start=start)

    def step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, state: TrainState) -> StepOutput:
        c = self.options
        x_adv = self.perturb(model, x, y, state)
        feats_clean, logits_clean = features_and_logits(model, x, c.feature_module)
        feats_adv, logits_adv = features_and_logits(model, x_adv, c.feature_module)
        ce = smoothed_cross_entropy(logits_adv, y, c.smoothing)
        lip = lipschitz_term(logits_clean, logits_adv, feats_clean, feats_adv, x, x_adv, c.lip_offset)
        loss = ce + c.lam * lip
        stats = {"ce": float(ce.detach()), "lipschitz": float(lip.detach())}
        if c.ema:
            if state.ema is None:  # a state not made by init_state: create the average now
                state.ema = AutoWeightAveraging(model, decay_max=c.decay_max, threshold=c.threshold)
            ratio = state.ema.ratio(logits_clean, logits_adv, y)
            update = ratio < state.ema.threshold
            state.extra["ema_pending"] = update
            stats.update(ema_ratio=ratio, ema_updated=float(update))
        return StepOutput(
            loss=loss, logits_clean=logits_clean.detach(), logits_adv=logits_adv.detach(), stats=stats, x_adv=x_adv
        )

    def after_optimizer_step(self, model: nn.Module, state: TrainState) -> None:
        if state.ema is not None and state.extra.pop("ema_pending", False):
            state.ema.update(model)
