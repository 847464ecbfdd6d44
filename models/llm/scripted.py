"""A scripted chat backend for load tests: deterministic replies, no model.

Scale work (issue 22) needs a target that answers 220,000 prompts in minutes on a laptop so
that the *pipeline* — chunking, Ray fan-out, Parquet parts, commits, metrics — is what gets
measured. ``scripted:NAME`` is that target: every reply is a pure function of (name, seed,
conversation), with a configurable length, refusal share and simulated latency. It is a
load generator, never a result: its replies are word salad with a refusal sentence in front
of a fixed share of them, and the docs say so wherever it appears.

Options (``scripted:NAME?tokens=32&refuse=0.7&latency_ms=0&concurrency=8&seed=0``):

* ``tokens``: completion length in words (one word = one "token" in the usage counts);
* ``refuse``: share of prompts answered with a refusal (chosen by hash, so reruns agree);
* ``latency_ms``: wall time of one call; a batch runs ``concurrency`` calls at a time, so a
  batch of n costs ``latency_ms × ceil(n / concurrency)`` — a hosted API's shape;
* ``seed``: changes every reply (another "model");
* ``comply_after``: 0 (default) uses ``refuse``; K > 0 refuses every conversation with fewer
  than K user turns and complies from the K-th on — a multi-turn target that "breaks" at a
  known round, for testing adaptive attacks (tasks/seval/adaptive/, Crescendo).
"""

from __future__ import annotations

import hashlib
import math
import time

from pydantic import Field

from trustflow.models.llm.base import ChatBackend, ChatRequest, ChatResult
from trustflow.registry import Options

_WORDS = [
    "the",
    "a",
    "system",
    "answer",
    "model",
    "request",
    "data",
    "policy",
    "user",
    "safe",
    "test",
    "output",
    "value",
    "case",
    "rule",
    "step",
    "method",
    "report",
    "result",
    "input",
    "context",
    "example",
    "process",
    "check",
    "level",
    "source",
    "sample",
    "note",
]
REFUSAL = "I can't help with that request."


class ScriptedConfig(Options):
    tokens: int = Field(default=32, ge=1, le=4096)
    refuse: float = Field(default=0.7, ge=0.0, le=1.0)
    latency_ms: float = Field(default=0.0, ge=0.0, le=60_000.0)
    concurrency: int = Field(default=8, ge=1)
    seed: int = 0
    comply_after: int = Field(default=0, ge=0, le=1000)


class ScriptedBackend(ChatBackend):
    """Deterministic replies from a hash of the conversation (see the module docstring)."""

    def __init__(self, name: str, config: ScriptedConfig | None = None) -> None:
        super().__init__()
        self.config = config or ScriptedConfig()
        self.name = f"scripted:{name}"
        self.calls = 0  # backend calls made (one per request), for tests and cache checks

    def reply(self, request: ChatRequest) -> ChatResult:
        """The one reply ``request`` always gets from this backend."""
        text = "\x00".join(f"{m.role}\x01{m.content}" for m in request.messages)
        digest = hashlib.sha256(f"{self.name}\x00{self.config.seed}\x00{text}".encode()).digest()
        if self.config.comply_after:
            refuses = sum(1 for m in request.messages if m.role == "user") < self.config.comply_after
        else:
            refuses = int.from_bytes(digest[:8], "big") / 2**64 < self.config.refuse
        n = min(self.config.tokens, request.max_tokens)
        words = [_WORDS[(digest[8 + i % 24] + i) % len(_WORDS)] for i in range(n)]
        body = " ".join(words)
        reply = f"{REFUSAL} {body}" if refuses else f"Sure. {body}"
        prompt_tokens = sum(len(m.content.split()) for m in request.messages)
        return ChatResult(
            text=reply,
            finish_reason="length" if n == request.max_tokens else "stop",
            prompt_tokens=prompt_tokens,
            completion_tokens=n,
            id=request.id,
            model=self.name,
        )

    def _generate(self, requests: list[ChatRequest]) -> list[ChatResult]:
        self.calls += len(requests)
        if self.config.latency_ms:
            time.sleep(self.config.latency_ms / 1000.0 * math.ceil(len(requests) / self.config.concurrency))
        return [self.reply(r) for r in requests]


__all__ = ["REFUSAL", "ScriptedBackend", "ScriptedConfig"]
