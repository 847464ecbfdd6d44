"""The in-process vLLM replica passes each request's whole multi-turn history to ``LLM.chat``
(issue 21: adaptive attacks such as Crescendo need every backend to see the conversation).

vLLM is not installed here (GPU only, its own venv), so a stand-in ``vllm`` module records
what the replica hands to it; the replica is the very class the backend ships to Ray."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from trustflow.models.llm.base import ChatRequest
from trustflow.models.llm.vllm_backend import _replica_class


class _Out:
    def __init__(self, text: str) -> None:
        self.text, self.finish_reason, self.token_ids, self.logprobs = text, "stop", [1, 2], None


class _Result:
    def __init__(self, text: str) -> None:
        self.outputs, self.prompt_token_ids = [_Out(text)], [0, 1, 2]


def test_the_vllm_replica_sends_the_whole_conversation(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []

    class LLM:
        def __init__(self, model: str, **kwargs: Any) -> None:
            self.model = model

        def chat(self, conversations: list[list[dict[str, str]]], params: Any, use_tqdm: bool = True) -> list[_Result]:
            seen.append(conversations)
            return [_Result(f"reply to {len(c)} messages") for c in conversations]

    fake = types.ModuleType("vllm")
    fake.LLM = LLM  # type: ignore[attr-defined]
    fake.SamplingParams = lambda **kw: kw  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", fake)
    history = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "second question"},
    ]
    requests = [ChatRequest.of(history, max_tokens=8), ChatRequest.of("single", max_tokens=8)]
    # the items exactly as VLLMBackend._generate builds them
    items = [{"messages": r.message_dicts(), **r.params().model_dump()} for r in requests]
    replica = _replica_class()("m", {})
    out = replica.generate(items)
    assert seen == [[history, [{"role": "user", "content": "single"}]]]
    assert [o["text"] for o in out] == ["reply to 4 messages", "reply to 1 messages"]
