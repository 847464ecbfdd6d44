"""OpenAI-compatible backend against an in-memory HTTP transport: payloads, parsing,
retries with backoff, concurrency bound, API key handling. No sockets."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from trustflow.models.llm.openai_backend import OpenAIBackend


def completion(
    text: str = "hi", finish: str = "stop", usage: tuple[int, int] | None = (5, 2), logprobs: list | None = None
) -> dict:
    choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
    if logprobs is not None:
        choice["logprobs"] = {"content": logprobs}
    body = {"id": "x", "object": "chat.completion", "model": "m", "choices": [choice]}
    if usage:
        body["usage"] = {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}
    return body


def make(handler, **kw) -> OpenAIBackend:
    kw.setdefault("backoff_base_s", 0.001)
    return OpenAIBackend("http://llm.test/v1", kw.pop("model", "m"), transport=httpx.MockTransport(handler), **kw)


def req(text: str = "hello", **params) -> dict:
    return {"messages": [{"role": "user", "content": text}], **params}


def test_payload_and_parsing() -> None:
    seen: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/chat/completions"
        seen.append(json.loads(request.content))
        lps = [
            {
                "token": "Hi",
                "logprob": -0.1,
                "top_logprobs": [{"token": "Hi", "logprob": -0.1}, {"token": "Yo", "logprob": -2.5}],
            }
        ]
        return httpx.Response(200, json=completion("Hi", logprobs=lps))

    b = make(handler)
    r = b.generate(
        [req(max_tokens=9, temperature=0.7, top_p=0.9, seed=3, stop=["\n"], logprobs=True, top_logprobs=2, id="a")]
    )[0]
    assert seen[0] == {
        "model": "m",
        "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": 9,
        "temperature": 0.7,
        "top_p": 0.9,
        "seed": 3,
        "stop": ["\n"],
        "logprobs": True,
        "top_logprobs": 2,
    }
    assert (r.text, r.finish_reason, r.prompt_tokens, r.completion_tokens, r.id) == ("Hi", "stop", 5, 2, "a")
    assert r.logprobs[0].token == "Hi" and [t.token for t in r.logprobs[0].top] == ["Hi", "Yo"]
    b.close()


def test_server_without_logprobs_or_usage_and_stop_kept_by_server() -> None:
    b = make(lambda request: httpx.Response(200, json=completion("one END two", usage=None)))
    r = b.generate([req(logprobs=True, stop=["END"])])[0]
    assert r.ok and r.logprobs is None and (r.prompt_tokens, r.completion_tokens) == (0, 0)
    assert r.text == "one "  # stop strings are cut even when the server leaves them in
    b.close()


def test_retries_on_429_and_5xx_then_succeeds() -> None:
    codes = iter([429, 503, 200])
    attempts = []

    def handler(request: httpx.Request) -> httpx.Response:
        code = next(codes)
        attempts.append(code)
        if code != 200:
            return httpx.Response(code, headers={"retry-after": "0"} if code == 429 else {}, text="busy")
        return httpx.Response(200, json=completion())

    b = make(handler, max_retries=3)
    r = b.generate([req()])[0]
    assert r.ok and attempts == [429, 503, 200] and b.attempts == 3
    b.close()


def test_client_errors_are_not_retried_and_do_not_lose_the_batch() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if body["messages"][0]["content"] == "bad":
            return httpx.Response(400, json={"error": "context too long"})
        return httpx.Response(200, json=completion("fine"))

    b = make(handler, max_retries=5)
    results = b.generate([req("ok"), req("bad"), req("ok")])
    assert [r.ok for r in results] == [True, False, True]
    assert "HTTP 400" in results[1].error and "context too long" in results[1].error
    assert results[1].finish_reason == "error"
    assert b.attempts == 3  # no retry for a 400
    assert (b.usage.requests, b.usage.errors, b.usage.prompt_tokens, b.usage.completion_tokens) == (3, 1, 10, 4)
    b.close()


def test_connection_errors_give_error_results_after_bounded_retries() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    b = make(handler, max_retries=2)
    t0 = time.perf_counter()
    results = b.generate([req(), req()])
    assert all(not r.ok and "after 3 attempts" in r.error and "ConnectError" in r.error for r in results)
    assert b.attempts == 6 and time.perf_counter() - t0 < 2
    b.close()


def test_backoff_is_exponential_with_jitter_and_capped() -> None:
    b = make(lambda r: httpx.Response(200, json=completion()), backoff_base_s=1.0, backoff_max_s=5.0)
    for attempt in range(6):
        waits = [b._backoff(attempt, None) for _ in range(50)]
        assert all(0 <= w <= min(5.0, 2**attempt) for w in waits)
    assert 3.0 <= b._backoff(0, 3.0) <= 3.6 and b._backoff(0, 99.0) == 5.0  # Retry-After + jitter, capped
    b.close()


def test_concurrency_is_bounded() -> None:
    lock = threading.Lock()
    state = {"now": 0, "peak": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.05)
        with lock:
            state["now"] -= 1
        return httpx.Response(200, json=completion())

    b = make(handler, max_concurrency=3)
    results = b.generate([req(str(i)) for i in range(12)])
    assert all(r.ok for r in results)
    assert state["peak"] == 3 and b.max_in_flight == 3
    b.close()


def test_api_key_is_sent_but_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_LLM_KEY", "sk-very-secret")
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(401, json={"error": "bad key"})

    b = make(handler, api_key_env="MY_LLM_KEY")
    r = b.generate([req()])[0]
    assert seen == ["Bearer sk-very-secret"]
    assert "sk-very-secret" not in repr(b) + (r.error or "") + str(vars(b))
    b.close()


def test_model_is_discovered_when_the_spec_has_none() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"object": "list", "data": [{"id": "served-model"}]})
        assert json.loads(request.content)["model"] == "served-model"
        return httpx.Response(200, json=completion())

    b = make(handler, model=None)
    assert b.generate([req()])[0].ok and b.model == "served-model"
    b.close()
