"""The critic contract: a judgement per (prompt, response) and a registry of critics.

A judgement is about the *response*: a harmful request answered with a refusal is safe.
A critic that cannot produce a judgement returns one with ``judge_error`` set; such rows
are never counted as safe or unsafe (see tasks/seval/metrics.py).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field, field_validator

from trustflow.data.seval.labels import DEFAULT_COLUMNS, LabelColumns, read_label_rows
from trustflow.registry import NoOptions, Options, Registry


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


class ModelSpecOptions(Options):
    """Options of a critic that runs an LLM: ``target`` is its model spec (``critic:<model spec>``)."""

    target: str

    @field_validator("target")
    @classmethod
    def _known_model_spec(cls, value: str) -> str:
        from trustflow.models.llm.spec import parse_spec

        return str(parse_spec(value))  # a malformed spec fails here, not at the first judgement


class Critic(ABC):
    """Judges batches of items; subclasses register with ``@CRITICS.register(name)``.

    Constructing a critic is cheap (identity only); a model is loaded on first use, so a
    spec can be resolved and its ``critic_id`` computed anywhere."""

    name: ClassVar[str] = "critic"  # set by ``@CRITICS.register``
    Options: ClassVar[type[Options]] = NoOptions
    critic_id: str = "critic"
    threshold: float = 0.5
    in_process: ClassVar[bool] = False
    """True for critics that judge in microseconds with no model (rules, regexes): the
    judging stage then runs them in the flow's process instead of starting Ray and an actor,
    which costs more (seconds) than judging a whole run."""

    @classmethod
    def from_options(cls, options: BaseModel) -> Critic:
        """The critic its validated options describe: ``target`` is the first argument."""
        values = options.model_dump()
        target = values.pop("target", None)
        return cls(*(() if target is None else (target,)), **values)

    @property
    def prompt_hash(self) -> str:
        """Identity of the judging instructions, so results from different prompts never mix."""
        return hashlib.sha256(self.instructions().encode()).hexdigest()[:16]

    def instructions(self) -> str:
        return self.critic_id

    @abstractmethod
    def judge(self, items: list[JudgeItem]) -> list[Judgement]: ...

    llm_cache: Any = None
    """The cross-run LLM response cache (``models/llm/cache.LLMCache``) this critic's chat
    calls go through; None (the default, and ``--no-cache``) calls the model every time.
    Critics that make no chat calls (rules, hidden-state probes) ignore it."""

    def use_llm_cache(self, cache: Any) -> None:
        """Route this critic's chat calls through ``cache`` (set before the first judge call)."""
        self.llm_cache = cache

    def counters(self) -> dict[str, int]:
        """The LLM cache's counters of this critic's chat calls (empty when none were cached)."""
        backend = self.__dict__.get("_backend")
        counters = getattr(backend, "counters", None) if backend is not None else None
        return dict(counters()) if callable(counters) else {}


CRITICS: Registry[type[Critic]] = Registry(
    "critic", plugins="trustflow.models.critics", factory=lambda entry, options: entry.obj.from_options(options)
)


def make_critic(spec: str) -> Critic:
    """A critic from its spec: ``name[:model spec][?option=value&...]``, e.g. ``refusal``,
    ``llm:pkg:qwen2.5-1.5b`` or ``probe?threshold=0.6`` (see each critic's ``Options``)."""
    critic: Critic = CRITICS.create(spec)
    return critic


def read_labels(path: Path, cols: LabelColumns = DEFAULT_COLUMNS) -> list[tuple[JudgeItem, bool]]:
    """Labelled ``(JudgeItem, unsafe)`` pairs from a CSV, JSONL or Parquet file."""
    return [
        (JudgeItem(prompt=row.prompt, response=row.response, lang=_lang(row.lang)), row.unsafe)
        for row in read_label_rows(path, cols)
    ]


def _lang(lang: str) -> Literal["zh", "en"]:
    return "zh" if lang == "zh" else "en"
