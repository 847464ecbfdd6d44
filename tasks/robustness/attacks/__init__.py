"""Evaluation attacks (``EVAL_ATTACKS``): one module per attack, found automatically.

See ``base.py`` for the calling convention and how to add one.
"""

from trustflow.tasks.robustness.attacks.base import EVAL_ATTACKS, BudgetOptions, EvalAttack, build_attack

__all__ = ["EVAL_ATTACKS", "BudgetOptions", "EvalAttack", "build_attack"]
