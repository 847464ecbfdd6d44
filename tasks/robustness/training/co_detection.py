"""Catastrophic overfitting (CO) detection for single-step adversarial training.

CO (Wong et al., 2020) is the sudden collapse of multi-step robustness during FGSM-based
training: within an epoch or two, PGD accuracy falls to ~0 while FGSM accuracy jumps up,
because the model has learnt to mask its gradient rather than to be robust. Two symptoms,
checked on a fixed held-out batch after every epoch (or every N steps):

* ``pgd_drop``: PGD accuracy fell by more than ``drop_threshold`` (absolute) below the best
  PGD accuracy seen so far (``reference="best"``) or the previous check
  (``reference="previous"``);
* ``pgd_fgsm_gap``: PGD accuracy < ``ratio_threshold`` × FGSM accuracy, counted only when
  FGSM accuracy is at least ``min_fgsm_acc``, so an untrained model (FGSM and PGD accuracy
  both near chance, ratio noisy) is not flagged.

``check`` returns a :class:`Verdict` whose ``action`` is the configured policy when CO is
detected ("stop": end training; "rollback": reload the checkpoint of ``rollback_to``, the
check with the best PGD accuracy; "continue": log only) and "none" otherwise. Every check
is kept in ``history`` (``history_table()`` gives plot-ready columns).

:func:`robust_accuracy_probe` measures the two accuracies: FGSM from the clean input
(step ε, no random start: the attack CO defeats) and PGD-k with a random start.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import torch
import torch.nn as nn

from trustflow.errors import ConfigError
from trustflow.tasks.robustness.perturb import fgsm, pgd
from trustflow.tasks.robustness.training.base import model_mode, unwrap

Policy = Literal["stop", "rollback", "continue"]
Action = Literal["stop", "rollback", "continue", "none"]


@dataclass(frozen=True)
class Verdict:
    co: bool
    reason: str
    action: Action
    rule: str | None = None  # "pgd_drop" | "pgd_fgsm_gap" | None
    rollback_to: int | None = None  # the check (epoch or step) with the best PGD accuracy


@dataclass(frozen=True)
class Check:
    at: int
    fgsm_acc: float
    pgd_acc: float
    co: bool
    rule: str | None


class CatastrophicOverfittingDetector:
    def __init__(
        self,
        drop_threshold: float = 0.2,
        ratio_threshold: float = 0.5,
        policy: Policy = "stop",
        min_fgsm_acc: float = 0.25,
        reference: Literal["best", "previous"] = "best",
    ) -> None:
        if policy not in ("stop", "rollback", "continue"):
            raise ConfigError(f"CO detector: policy must be stop, rollback or continue, got {policy!r}")
        if reference not in ("best", "previous"):
            raise ConfigError(f"CO detector: reference must be best or previous, got {reference!r}")
        if not (0.0 < drop_threshold <= 1.0 and 0.0 < ratio_threshold <= 1.0 and 0.0 <= min_fgsm_acc <= 1.0):
            raise ConfigError(
                "CO detector: drop_threshold and ratio_threshold must be in (0, 1], min_fgsm_acc in [0, 1]"
            )
        self.drop_threshold = drop_threshold
        self.ratio_threshold = ratio_threshold
        self.policy: Policy = policy
        self.min_fgsm_acc = min_fgsm_acc
        self.reference = reference
        self.history: list[Check] = []
        self.best_pgd: float | None = None
        self.best_at: int | None = None

    def check(self, epoch_or_step: int, fgsm_acc: float, pgd_acc: float) -> Verdict:
        fgsm_acc, pgd_acc = float(fgsm_acc), float(pgd_acc)
        if self.reference == "best":
            ref, ref_at = self.best_pgd, self.best_at
        else:
            prev = self.history[-1] if self.history else None
            ref, ref_at = (prev.pgd_acc, prev.at) if prev else (None, None)
        rule: str | None = None
        reason = "ok"
        if ref is not None and ref - pgd_acc > self.drop_threshold:
            rule = "pgd_drop"
            reason = (
                f"pgd_drop: PGD accuracy fell from {ref:.3f} (at {ref_at}) to {pgd_acc:.3f}, "
                f"more than {self.drop_threshold:.3f}"
            )
        elif fgsm_acc >= self.min_fgsm_acc and pgd_acc < self.ratio_threshold * fgsm_acc:
            rule = "pgd_fgsm_gap"
            reason = (
                f"pgd_fgsm_gap: PGD accuracy {pgd_acc:.3f} < {self.ratio_threshold:.2f} × FGSM accuracy {fgsm_acc:.3f}"
            )
        co = rule is not None
        self.history.append(Check(int(epoch_or_step), fgsm_acc, pgd_acc, co, rule))
        if not co and (self.best_pgd is None or pgd_acc > self.best_pgd):
            self.best_pgd, self.best_at = pgd_acc, int(epoch_or_step)
        return Verdict(
            co=co,
            reason=reason,
            action=self.policy if co else "none",
            rule=rule,
            rollback_to=self.best_at if co else None,
        )

    @property
    def first_co(self) -> int | None:
        """The first check flagged as CO, or None."""
        return next((c.at for c in self.history if c.co), None)

    def history_table(self) -> dict[str, list]:
        """Columns at / fgsm_acc / pgd_acc / co / rule, one row per check (for plots)."""
        rows = [asdict(c) for c in self.history]
        return {k: [r[k] for r in rows] for k in ("at", "fgsm_acc", "pgd_acc", "co", "rule")}


def robust_accuracy_probe(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    pgd_steps: int = 10,
    alpha: float | None = None,
    generator: torch.Generator | None = None,
) -> tuple[float, float]:
    """(FGSM accuracy, PGD-k accuracy) of ``model`` on the fixed batch (x, y), in eval mode.

    FGSM: one step of ε from the clean input. PGD: ``pgd_steps`` steps of ``alpha`` (default
    2.5·ε/k, i.e. 2/255 for ε = 8/255 and 10 steps, and enough to cross the ball for any ε:
    a fixed 2/255 could not leave a 0.3-ball in 10 steps and made PGD look weaker than FGSM)
    from a random start drawn from ``generator`` (pass a freshly seeded one for comparable checks).
    The model's train/eval modes are restored afterwards; parameters get no gradients.
    """
    m = unwrap(model)
    with model_mode(m, "eval"):
        x_fgsm = fgsm(m, x, y, eps)
        step = 2.5 * eps / pgd_steps if alpha is None else alpha
        x_pgd = pgd(m, x, y, eps, step, pgd_steps, "linf", random_init=True, generator=generator)
        with torch.no_grad():
            fgsm_acc = (m(x_fgsm).argmax(1) == y).float().mean().item()
            pgd_acc = (m(x_pgd).argmax(1) == y).float().mean().item()
    return fgsm_acc, pgd_acc
