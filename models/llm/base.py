"""One interface for every LLM backend: batched chat requests in, one result per request out.

A backend never loses a batch to one bad request: a request that fails comes back as a
``ChatResult`` with ``error`` set (and ``finish_reason="error"``). ``generate`` also records
token usage and wall time on the backend's ``usage`` meter.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from trustflow.errors import TrustflowError


class LLMError(TrustflowError):
    """An LLM backend cannot be built or cannot answer (the message says what to do)."""


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal["system", "user", "assistant"]
    content: str


class GenParams(BaseModel):
    """Per-call sampling parameters (OpenAI chat-completions semantics)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_tokens: int = Field(default=256, ge=1)
    temperature: float = Field(default=0.0, ge=0.0, le=5.0, description="0 means greedy decoding.")
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int | None = Field(default=None, description="Makes sampling reproducible (ignored when greedy).")
    stop: tuple[str, ...] | None = Field(default=None, description="Stop strings; the reply ends before the first one.")
    logprobs: bool = False
    top_logprobs: int = Field(default=0, ge=0, le=20, description="Alternatives per token when logprobs is on.")

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_list(cls, value: Any) -> Any:
        if value is None or value == [] or value == ():
            return None
        if isinstance(value, str):
            return (value,)
        return tuple(value)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


class ChatRequest(GenParams):
    """A conversation to continue plus its parameters; ``id`` is the caller's tag, echoed back."""

    messages: tuple[Message, ...] = Field(min_length=1)
    id: str | None = None

    @field_validator("messages", mode="before")
    @classmethod
    def _messages(cls, value: Any) -> Any:
        if isinstance(value, str):
            return ({"role": "user", "content": value},)
        return value

    @classmethod
    def of(cls, messages: str | Sequence[Message | Mapping[str, str]], **params: Any) -> ChatRequest:
        """A request from message dicts (or one user prompt); ``params`` are the other fields."""
        return cls.model_validate({"messages": messages, **params})

    def params(self) -> GenParams:
        return GenParams(**self.model_dump(include=set(GenParams.model_fields)))

    def message_dicts(self) -> list[dict[str, str]]:
        return [{"role": m.role, "content": m.content} for m in self.messages]


class TopLogprob(BaseModel):
    token: str
    logprob: float


class TokenLogprob(BaseModel):
    token: str
    logprob: float
    top: list[TopLogprob] = Field(default_factory=list)


class ChatResult(BaseModel):
    """One reply. ``latency_s`` is the wall time of the call that produced it (for a batched
    in-process backend: the whole micro-batch it ran in)."""

    text: str = ""
    finish_reason: str | None = None  # "stop" | "length" | "error" (| whatever a server says)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    logprobs: list[TokenLogprob] | None = None
    error: str | None = None
    id: str | None = None
    model: str | None = None
    cached: bool = False  # read from the cross-run response cache (models/llm/cache.py), not generated

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def failed(
        cls, error: str, request: ChatRequest | None = None, latency_s: float = 0.0, model: str | None = None
    ) -> ChatResult:
        return cls(
            error=error, finish_reason="error", latency_s=latency_s, id=request.id if request else None, model=model
        )


class Usage:
    """Running totals for a backend (thread-safe). Prices are per 1,000 tokens, optional."""

    def __init__(self, price_per_1k_prompt: float | None = None, price_per_1k_completion: float | None = None) -> None:
        self.price_per_1k_prompt = price_per_1k_prompt
        self.price_per_1k_completion = price_per_1k_completion
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.requests = 0
            self.errors = 0
            self.prompt_tokens = 0
            self.completion_tokens = 0
            self.wall_s = 0.0
            self.calls = 0

    def add(self, results: Iterable[ChatResult], wall_s: float = 0.0) -> None:
        with self._lock:
            self.calls += 1
            self.wall_s += wall_s
            for r in results:
                self.requests += 1
                self.errors += 0 if r.ok else 1
                self.prompt_tokens += r.prompt_tokens
                self.completion_tokens += r.completion_tokens

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def cost(self) -> float | None:
        if self.price_per_1k_prompt is None and self.price_per_1k_completion is None:
            return None
        return (
            self.prompt_tokens * (self.price_per_1k_prompt or 0.0)
            + self.completion_tokens * (self.price_per_1k_completion or 0.0)
        ) / 1000.0

    @property
    def completion_tokens_per_s(self) -> float:
        return self.completion_tokens / self.wall_s if self.wall_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "wall_s": round(self.wall_s, 3),
            "completion_tokens_per_s": round(self.completion_tokens_per_s, 2),
            "cost": self.cost,
        }

    def __repr__(self) -> str:
        return f"Usage({self.as_dict()})"


def as_requests(requests: Sequence[ChatRequest | dict[str, Any]]) -> list[ChatRequest]:
    return [r if isinstance(r, ChatRequest) else ChatRequest.model_validate(r) for r in requests]


class ChatBackend(ABC):
    """Subclasses implement ``_generate`` (same length and order as its input)."""

    name: str = "backend"

    def __init__(self, usage: Usage | None = None) -> None:
        self.usage = usage or Usage()

    @abstractmethod
    def _generate(self, requests: list[ChatRequest]) -> list[ChatResult]: ...

    def generate(self, requests: Sequence[ChatRequest | dict[str, Any]]) -> list[ChatResult]:
        """One result per request, in order. Never raises for a failing request."""
        reqs = as_requests(requests)
        if not reqs:
            return []
        t0 = time.perf_counter()
        try:
            results = self._generate(reqs)
            if len(results) != len(reqs):
                raise LLMError(f"{self.name}: backend returned {len(results)} results for {len(reqs)} requests")
        except Exception as exc:  # the batch must not vanish: every request gets the error
            wall = time.perf_counter() - t0
            msg = f"{type(exc).__name__}: {exc}"
            results = [ChatResult.failed(msg, r, wall, self.name) for r in reqs]
        for req, res in zip(reqs, results, strict=True):
            if res.id is None and req.id is not None:
                res.id = req.id
        self.usage.add(results, time.perf_counter() - t0)
        return results

    def chat(self, messages: str | Sequence[Message | Mapping[str, str]], **params: Any) -> str:
        """One conversation (or one user prompt) → the reply text; raises ``LLMError`` on failure."""
        result = self.generate([ChatRequest.of(messages, **params)])[0]
        if result.error:
            raise LLMError(f"{self.name}: {result.error}")
        return result.text

    def close(self) -> None:
        """Release resources (HTTP connections, model memory, actors); by default there are none."""
        return None

    def __enter__(self) -> ChatBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
