"""Tester-LLM generation of S-Eval-style candidate test prompts (issue 4).

One job per module: ``drivers`` (diversity: persona, scenario, question form, register),
``prompts`` (the tester's instructions and exemplars), ``parsing`` (tester reply → clean
prompts), ``translate`` (zh↔en messages and reply checks) and ``generate`` (the batched
calls over a :class:`~trustflow.models.llm.base.ChatBackend`, translation linking and
LLM-rewritten attacks with an intent check). No orchestration here: a flow wires these
pure functions into tasks and actors.
"""

from __future__ import annotations

from trustflow.tasks.seval.generation.drivers import FACETS, Driver, Facet, combination_count, drivers_for
from trustflow.tasks.seval.generation.generate import (
    CANDIDATE_COLUMNS,
    BackendChatLLM,
    Candidate,
    GenerationResult,
    candidate_id_for,
    generate_for_leaves,
    intent_similarity,
    rewrite_attacks,
    translate_candidates,
)
from trustflow.tasks.seval.generation.parsing import ParsedCandidates, parse_candidates, passes_rules
from trustflow.tasks.seval.generation.prompts import build_generation_messages, generation_prompt_hash, sample_exemplars
from trustflow.tasks.seval.generation.translate import build_translation_messages, parse_translation

__all__ = [
    "CANDIDATE_COLUMNS",
    "FACETS",
    "BackendChatLLM",
    "Candidate",
    "Driver",
    "Facet",
    "GenerationResult",
    "ParsedCandidates",
    "build_generation_messages",
    "build_translation_messages",
    "candidate_id_for",
    "combination_count",
    "drivers_for",
    "generate_for_leaves",
    "generation_prompt_hash",
    "intent_similarity",
    "parse_candidates",
    "parse_translation",
    "passes_rules",
    "rewrite_attacks",
    "sample_exemplars",
    "translate_candidates",
]
