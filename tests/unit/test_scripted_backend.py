"""The ``scripted:`` load-generator backend (issue 22): deterministic, shaped like a model."""

from __future__ import annotations

import time

import pytest

from trustflow.errors import ConfigError
from trustflow.models.llm.base import ChatRequest
from trustflow.models.llm.scripted import REFUSAL
from trustflow.models.llm.spec import load_backend


def _requests(n: int, max_tokens: int = 64) -> list[ChatRequest]:
    return [ChatRequest.of(f"prompt number {i}", max_tokens=max_tokens, id=f"r{i}") for i in range(n)]


def test_replies_are_a_function_of_name_seed_and_conversation() -> None:
    a, again = load_backend("scripted:a?tokens=12"), load_backend("scripted:a?tokens=12")
    first, second = a.generate(_requests(20)), again.generate(_requests(20))
    assert [r.text for r in first] == [r.text for r in second]
    other = load_backend("scripted:a?tokens=12&seed=1").generate(_requests(20))
    assert [r.text for r in other] != [r.text for r in first]
    assert all(r.completion_tokens == 12 and r.finish_reason == "stop" and r.id == f"r{i}" for i, r in enumerate(first))
    assert load_backend("scripted:a?tokens=12").generate(_requests(1, max_tokens=5))[0].finish_reason == "length"


def test_the_refusal_share_follows_the_option() -> None:
    for share in (0.0, 0.3, 1.0):
        replies = load_backend(f"scripted:x?refuse={share}").generate(_requests(400))
        refused = sum(r.text.startswith(REFUSAL) for r in replies) / len(replies)
        assert refused == pytest.approx(share, abs=0.07)


def test_latency_is_paid_per_wave_of_concurrent_calls() -> None:
    backend = load_backend("scripted:slow?latency_ms=40&concurrency=4")
    t0 = time.perf_counter()
    backend.generate(_requests(8))  # two waves of four
    assert 0.075 <= time.perf_counter() - t0 < 1.0
    assert backend.calls == 8  # type: ignore[attr-defined]


def test_bad_options_are_refused_naming_them() -> None:
    with pytest.raises(ConfigError, match="refuse"):
        load_backend("scripted:x?refuse=2")
    with pytest.raises(ConfigError, match="temperature"):
        load_backend("scripted:x?temperature=1")


def test_comply_after_breaks_at_the_kth_user_turn() -> None:
    backend = load_backend("scripted:t?comply_after=3&tokens=4&refuse=1.0")

    def turns(n: int) -> list[dict[str, str]]:
        out: list[dict[str, str]] = []
        for i in range(n):
            out += [{"role": "user", "content": f"q{i}"}] + (
                [{"role": "assistant", "content": "a"}] if i < n - 1 else []
            )
        return out

    replies = [backend.chat(turns(n), max_tokens=4) for n in (1, 2, 3, 4)]
    assert [r.startswith(REFUSAL) for r in replies] == [True, True, False, False]  # refuse=1.0 is overridden
    with pytest.raises(ConfigError, match="comply_after"):
        load_backend("scripted:t?comply_after=-1")
