"""Adaptive multi-round S-Eval attacks (PAIR, TAP, Crescendo), one module each, registered in
``ADAPTIVE_ATTACKS``; ``engine.py`` runs them keyed and resumable. See
docs/pipelines/seval-attacks.md, section "Adaptive attacks"."""

from __future__ import annotations

from trustflow.tasks.seval.adaptive.base import (
    ADAPTIVE_ATTACKS,
    AdaptiveAttack,
    AdaptiveOptions,
    Child,
    Node,
    get_adaptive,
    goal_overlap,
    parse_attacker_reply,
)

__all__ = [
    "ADAPTIVE_ATTACKS",
    "AdaptiveAttack",
    "AdaptiveOptions",
    "Child",
    "Node",
    "get_adaptive",
    "goal_overlap",
    "parse_attacker_reply",
]
