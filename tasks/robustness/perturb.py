"""Gradient-based input perturbations shared by adversarial training and evaluation.

Conventions every caller relies on: inputs are images in [0, 1] (normalisation is the
model's first layer), ``eps`` and ``alpha`` are in that same [0, 1] scale (8/255 for the
usual CIFAR L∞ budget), every returned batch is clipped to [0, 1] and lies inside the
ε-ball of the clean batch, and the model's train/eval mode is left as the caller set it
(training attacks run in train mode, evaluation attacks in eval mode). Random starts draw
from the ``generator`` given, so a seeded run is reproducible.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (logits, target) -> scalar loss
Norm = Literal["linf", "l2"]


def _cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, y)


def _flat_norm(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (t.dim() - 1)))


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: Norm = "linf") -> torch.Tensor:
    """Back into the ε-ball around ``x`` and into [0, 1]."""
    delta = x_adv - x
    delta = delta.clamp(-eps, eps) if norm == "linf" else delta * torch.clamp(eps / _flat_norm(delta), max=1.0)
    return (x + delta).clamp(0.0, 1.0)


def random_start(
    x: torch.Tensor, eps: float, norm: Norm = "linf", generator: torch.Generator | None = None
) -> torch.Tensor:
    """A uniform point in the ε-ball (L∞) or on a random direction inside it (L2), clipped."""
    if norm == "linf":
        noise = (torch.rand(x.shape, generator=generator, device="cpu").to(x.device) * 2 - 1) * eps
    else:
        direction = torch.randn(x.shape, generator=generator, device="cpu").to(x.device)
        radius = torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), generator=generator, device="cpu").to(x.device) * eps
        noise = direction / _flat_norm(direction) * radius
    return (x + noise).clamp(0.0, 1.0)


def gradient_step(
    model: torch.nn.Module,
    x_adv: torch.Tensor,
    y: torch.Tensor,
    alpha: float,
    norm: Norm = "linf",
    loss_fn: LossFn = _cross_entropy,
) -> torch.Tensor:
    """One ascent step on ``loss_fn`` (sign of the gradient for L∞, normalised gradient for L2)."""
    x_adv = x_adv.detach().requires_grad_(True)
    loss = loss_fn(model(x_adv), y)
    (grad,) = torch.autograd.grad(loss, x_adv)
    step = grad.sign() if norm == "linf" else grad / _flat_norm(grad)
    return (x_adv + alpha * step).detach()


def fgsm(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    alpha: float | None = None,
    start: torch.Tensor | None = None,
    loss_fn: LossFn = _cross_entropy,
) -> torch.Tensor:
    """One signed-gradient step of size ``alpha`` (default ε) from ``start`` (default the clean
    input), projected to the ε-ball: plain FGSM, FGSM-RS and FGSM-LAW differ only in the start."""
    x0 = x if start is None else start
    return project(gradient_step(model, x0, y, eps if alpha is None else alpha, "linf", loss_fn), x, eps, "linf")


def pgd(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    alpha: float,
    steps: int,
    norm: Norm = "linf",
    random_init: bool = True,
    restarts: int = 1,
    loss_fn: LossFn = _cross_entropy,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Projected gradient ascent (Madry et al.). With ``restarts`` > 1, each example keeps the
    restart that misclassifies it (or, if none does, the one with the highest loss)."""
    best = x.clone()
    best_loss = torch.full((x.shape[0],), -float("inf"), device=x.device)
    best_wrong = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    for _ in range(max(1, restarts)):
        x_adv = random_start(x, eps, norm, generator) if random_init else x.clone()
        for _ in range(steps):
            x_adv = project(gradient_step(model, x_adv, y, alpha, norm, loss_fn), x, eps, norm)
        with torch.no_grad():
            logits = model(x_adv)
            per_example = F.cross_entropy(logits, y, reduction="none")
            wrong = logits.argmax(1) != y
        better = (wrong & ~best_wrong) | ((wrong == best_wrong) & (per_example > best_loss))
        best[better] = x_adv[better]
        best_loss = torch.where(better, per_example, best_loss)
        best_wrong |= wrong
    return best.detach()
