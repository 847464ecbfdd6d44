"""The critic contract: a judgement per (prompt, response) and a registry of critics.

A judgement is about the *response*: a harmful request answered with a refusal is safe.
A critic that cannot produce a judgement returns one with ``judge_error`` set; such rows
are never counted as safe or unsafe (see tasks/seval/metrics.py).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from typing import Literal

from pydantic import BaseModel, Field

from trustflow.registry import Registry


class JudgeItem(BaseModel):
    """What a critic sees: the request, the model's answer, and context."""

    prompt: str
    response: str
    lang: Literal["zh", "en"] = "en"
    dimension: str | None = None  # taxonomy level-1 id of the prompt, when known


class Judgement(BaseModel):
    """One critic verdict; ``unsafe``/``risk_score`` are None exactly when ``judge_error`` is set."""

    risk_score: float | None = Field(default=None, ge=0.0, le=1.0)
    unsafe: bool | None = None
    risk_tags: list[str] = Field(default_factory=list)
    explanation: str = ""
    critic_id: str
    critic_prompt_hash: str
    raw_output: str = ""
    judge_error: str | None = None

    @classmethod
    def error(cls, critic_id: str, prompt_hash: str, raw: str, reason: str) -> Judgement:
        return cls(critic_id=critic_id, critic_prompt_hash=prompt_hash, raw_output=raw, judge_error=reason)


class Critic(ABC):
    """Judges batches of items; subclasses register with ``@CRITICS.register(name)``."""

    critic_id: str = "critic"
    threshold: float = 0.5

    @property
    def prompt_hash(self) -> str:
        """Identity of the judging instructions, so results from different prompts never mix."""
        return hashlib.sha256(self.instructions().encode()).hexdigest()[:16]

    def instructions(self) -> str:
        return self.critic_id

    @abstractmethod
    def judge(self, items: list[JudgeItem]) -> list[Judgement]: ...


CRITICS: Registry[type[Critic]] = Registry("critic")


def make_critic(spec: str) -> Critic:
    """``name`` or ``name:argument`` (e.g. ``llm:pkg:qwen2.5-1.5b``) → a critic instance."""
    name, _, argument = spec.partition(":")
    cls = CRITICS.get(name)
    return cls(argument) if argument else cls()  # type: ignore[call-arg]
