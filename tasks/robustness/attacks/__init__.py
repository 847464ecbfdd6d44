"""Evaluation attacks (``EVAL_ATTACKS``): clean, fgsm, pgd, autoattack, square.

Importing this package registers them all; see ``base.py`` for the calling convention.
"""

from trustflow.tasks.robustness.attacks import autoattack, clean, fgsm, pgd, square  # noqa: F401  (registration)
from trustflow.tasks.robustness.attacks.base import EVAL_ATTACKS, AttackConfig, EvalAttack, build_attack

__all__ = ["EVAL_ATTACKS", "AttackConfig", "EvalAttack", "build_attack"]
