"""Applying attacks: one attack prompt per (base prompt, attack), as rows or as a table."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pyarrow as pa

from trustflow.errors import InputError
from trustflow.tasks.seval.attacks.base import ATTACKS, SEVAL_ATTACK_PROMPTS, Attack, AttackPrompt, Lang, get_attack

# S-Eval's order of its ten categories.
SEVAL_ATTACK_NAMES: tuple[str, ...] = (
    "positive_induction",
    "reverse_induction",
    "code_injection",
    "instruction_jailbreak",
    "goal_hijacking",
    "instruction_encryption",
    "deepinception",
    "in_context_attack",
    "chain_of_utterances",
    "compositional_instructions",
)


def attack_names() -> tuple[str, ...]:
    """Every registered attack: S-Eval's ten in its order, then any others by name."""
    return SEVAL_ATTACK_NAMES + tuple(n for n in ATTACKS.names() if n not in SEVAL_ATTACK_NAMES)


def _instances(attacks: Iterable[str] | None, options: Mapping[str, Mapping[str, Any]] | None) -> list[Attack]:
    names = list(attack_names() if attacks is None else attacks)
    options = options or {}
    for name in list(names) + list(options):
        ATTACKS.get(name)  # ConfigError listing the known names
    return [get_attack(name, options.get(name)) for name in names]


def apply_all(
    base_id: str,
    prompt: str,
    lang: Lang,
    seed: int,
    attacks: Iterable[str] | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[AttackPrompt]:
    """One attack prompt per attack (every registered one by default, S-Eval's ten first)."""
    return [a.apply(base_id, prompt, lang, seed) for a in _instances(attacks, options)]


def attack_table(
    base_table: pa.Table,
    seed: int,
    attacks: Sequence[str] | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> pa.Table:
    """Base prompt rows (columns ``prompt_id``, ``lang``, ``prompt``) → attack rows.

    One row per base row and attack, with the columns of :data:`SEVAL_ATTACK_PROMPTS`
    (``attack_id, base_id, attack, template_id, seed, lang, prompt, payload, encoding``).
    ``options`` maps an attack name to its options, e.g. ``{"instruction_encryption":
    {"encoding": "base64"}}``.
    """
    missing = [c for c in ("prompt_id", "lang", "prompt") if c not in base_table.column_names]
    if missing:
        raise InputError(
            f"base prompt table lacks column(s) {', '.join(missing)}; it has: {', '.join(base_table.column_names)}"
        )
    instances = _instances(attacks, options)
    ids = base_table.column("prompt_id").to_pylist()
    langs = base_table.column("lang").to_pylist()
    prompts = base_table.column("prompt").to_pylist()
    seen: set[str] = set()
    for i, pid in enumerate(ids):
        if pid is None or prompts[i] is None or langs[i] is None:
            raise InputError(f"base prompt table row {i}: prompt_id, lang and prompt must not be null")
        if pid in seen:
            raise InputError(f"base prompt table: prompt_id {pid!r} occurs more than once")
        seen.add(pid)

    rows: dict[str, list[Any]] = {name: [] for name in SEVAL_ATTACK_PROMPTS.names}
    for pid, lang, prompt in zip(ids, langs, prompts, strict=True):
        for attack in instances:
            out = attack.apply(pid, prompt, lang, seed)
            rows["attack_id"].append(out.attack_id)
            for col in SEVAL_ATTACK_PROMPTS.names[1:]:
                rows[col].append(getattr(out, col))
    return pa.Table.from_pydict(rows, schema=SEVAL_ATTACK_PROMPTS.with_metadata())
