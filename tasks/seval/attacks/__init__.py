"""The 10 S-Eval adversarial instruction attacks, one module each, registered in ``ATTACKS``.

Every module of this package (``_private`` ones excepted) is imported the first time
``ATTACKS`` is asked for a name, which registers every attack; adding an attack is adding one
file with ``@ATTACKS.register("name")``. Names match the ``category`` values of the official
S-Eval attack files. See docs/pipelines/seval-attacks.md.
"""

from __future__ import annotations

from typing import Any

from trustflow.tasks.seval.attacks._encoding import ENCODINGS, caesar_shift, decode, encode
from trustflow.tasks.seval.attacks._table import SEVAL_ATTACK_NAMES, apply_all, attack_names, attack_table
from trustflow.tasks.seval.attacks.base import (
    ATTACKS,
    LANGS,
    SEVAL_ATTACK_PROMPTS,
    Attack,
    AttackError,
    AttackOptions,
    AttackPrompt,
    ChatLLM,
    Lang,
    Template,
    attack_id_for,
    get_attack,
)


def __getattr__(name: str) -> Any:
    if name == "ATTACK_NAMES":  # computed on use: looking the names up imports every attack module
        return attack_names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ATTACKS",
    "ENCODINGS",
    "LANGS",
    "SEVAL_ATTACK_NAMES",
    "SEVAL_ATTACK_PROMPTS",
    "Attack",
    "AttackError",
    "AttackOptions",
    "AttackPrompt",
    "ChatLLM",
    "Lang",
    "Template",
    "apply_all",
    "attack_id_for",
    "attack_names",
    "attack_table",
    "caesar_shift",
    "decode",
    "encode",
    "get_attack",
]
