"""OpenAI-compatible HTTP backend (``vllm serve``, ``transformers serve``, hosted providers).

- Bounded, adaptive concurrency: at most ``max_concurrency`` requests in flight per backend,
  shared by every ``generate`` call (a thread pool feeds it). With ``adaptive`` (default) the
  bound is AIMD (models/llm/limits.py): halved on 429/503/timeouts/``Retry-After``, grown by
  one after a run of successes; a 429's ``Retry-After`` pauses every new request of this
  backend (the quota is the client's), a 503's only delays the retry of that request.
- Rate limits: ``rpm`` / ``tpm`` token buckets (requests and tokens per ``window_s``, default
  a minute); tokens are estimated before a call (prompt text + ``max_tokens``) and corrected
  by the response's ``usage`` after it.
  ``generate`` may be called from several threads at once: their requests queue in the one
  pool (first come, first served), which is how a caller keeps the server's slots full
  across batches (``tasks/seval/responses.py``).
- The payload is exactly the request's parameters: ``logprobs`` only when asked for.
- Timeouts: ``connect_timeout_s`` to connect, ``timeout_s`` for the whole response.
- Retries: connection errors, timeouts, 429 and 5xx are retried up to ``max_retries`` times
  with exponential backoff and full jitter (``Retry-After`` honoured with a little jitter,
  capped at ``backoff_max_s``); other 4xx fail at once. A request that still fails becomes a
  result with ``error`` set (an error row downstream, never a lost request).
- Prices (``price_per_1k_prompt`` / ``price_per_1k_completion``) go to the ``usage`` meter.
- Logprobs are parsed when the server returns them (vLLM does; ``transformers serve``
  ignores the field, so they are ``None``). Token counts come from the ``usage`` field.
- The API key is read from the environment variable *named* by ``api_key_env`` (or given as
  a ``SecretStr``); it is sent as a bearer token and never appears in ``repr``, logs or errors.
"""

from __future__ import annotations

import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from pydantic import SecretStr

from trustflow.errors import ConfigError
from trustflow.models.llm.base import (
    ChatBackend,
    ChatRequest,
    ChatResult,
    LLMError,
    TokenLogprob,
    TopLogprob,
    Usage,
)
from trustflow.models.llm.limits import AdaptiveConcurrency, RateBucket, estimate_prompt_tokens

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504, 529}
OVERLOAD_STATUS = {429, 503, 529}  # "slow down": AIMD halves the concurrency


class OpenAIBackend(ChatBackend):
    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        *,
        api_key_env: str | None = None,
        api_key: SecretStr | str | None = None,
        max_concurrency: int = 8,
        timeout_s: float = 120.0,
        connect_timeout_s: float = 5.0,
        max_retries: int = 4,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 20.0,
        transport: httpx.BaseTransport | None = None,
        adaptive: bool = True,
        rpm: float | None = None,
        tpm: float | None = None,
        window_s: float = 60.0,
        price_per_1k_prompt: float | None = None,
        price_per_1k_completion: float | None = None,
        **kwargs: Any,
    ) -> None:
        if "usage" not in kwargs and (price_per_1k_prompt is not None or price_per_1k_completion is not None):
            kwargs["usage"] = Usage(price_per_1k_prompt, price_per_1k_completion)
        super().__init__(**kwargs)
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"OpenAI base URL must start with http:// or https://, got {base_url!r}")
        if max_concurrency < 1:
            raise ConfigError("max_concurrency must be >= 1")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = model or self.base_url
        key: str | None = None
        if api_key is not None:
            key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        elif api_key_env:
            key = os.environ.get(api_key_env)
            if not key:
                raise ConfigError(f"API key variable {api_key_env} is not set (or empty)")
        self._api_key = SecretStr(key) if key else None
        self.max_concurrency = max_concurrency
        self.max_retries = max(0, max_retries)
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.concurrency = AdaptiveConcurrency(max_concurrency, adaptive=adaptive)
        self.request_bucket = RateBucket(rpm, window_s) if rpm else None
        self.token_bucket = RateBucket(tpm, window_s) if tpm else None
        self._discover_lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0  # highest concurrency seen (for tests and tuning)
        self.attempts = 0  # HTTP attempts made, retries included
        self.throttled = 0  # answers that said "slow down" (429/503/529, Retry-After, timeouts)
        headers = {"Authorization": f"Bearer {self._api_key.get_secret_value()}"} if self._api_key else {}
        self._client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
            limits=httpx.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency),
            transport=transport,
        )
        self._pool = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="llm-http")

    def __repr__(self) -> str:
        return f"OpenAIBackend(base_url={self.base_url!r}, model={self.model!r}, api_key={'***' if self._api_key else None})"

    # ------------------------------------------------------------------ API

    def _generate(self, requests: list[ChatRequest]) -> list[ChatResult]:
        if self.model is None:
            with self._discover_lock:  # concurrent first calls ask /models once
                if self.model is None:
                    self.model = self._discover_model()  # stays None (server's choice) if that fails
                    self.name = self.model or self.name
        return list(self._pool.map(self._one, requests))

    def _discover_model(self) -> str | None:
        """The served model id (first of ``/models``), or None to let the server pick."""
        try:
            response = self._request("GET", "/models", None, retries=0)
            data = response.json().get("data") or []
            return data[0]["id"] if data else None
        except Exception:
            return None

    def list_models(self) -> list[str]:
        try:
            response = self._request("GET", "/models", None)
        except _RequestFailed as exc:
            raise LLMError(str(exc)) from None
        return [m["id"] for m in response.json().get("data", [])]

    def payload(self, req: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "messages": req.message_dicts(),
            "max_tokens": req.max_tokens,
            "temperature": req.temperature,
            "top_p": req.top_p,
        }
        if self.model:
            body["model"] = self.model
        if req.seed is not None:
            body["seed"] = req.seed
        if req.stop:
            body["stop"] = list(req.stop)
        if req.logprobs:
            body["logprobs"] = True
            if req.top_logprobs:
                body["top_logprobs"] = req.top_logprobs
        return body

    def _one(self, req: ChatRequest) -> ChatResult:
        t0 = time.perf_counter()
        estimate = estimate_prompt_tokens(req.message_dicts()) + req.max_tokens
        try:
            response = self._request("POST", "/chat/completions", self.payload(req), tokens=estimate)
            result = self.parse(response.json())
            if self.token_bucket is not None and (result.prompt_tokens or result.completion_tokens):
                self.token_bucket.adjust(estimate - result.prompt_tokens - result.completion_tokens)
        except _RequestFailed as exc:
            return ChatResult.failed(str(exc), req, time.perf_counter() - t0, self.name)
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            return ChatResult.failed(
                f"unexpected response: {type(exc).__name__}: {exc}", req, time.perf_counter() - t0, self.name
            )
        if req.stop and result.text:  # some servers (transformers serve) keep the stop string
            cut = min((result.text.find(s) for s in req.stop if s in result.text), default=-1)
            if cut >= 0:
                result.text = result.text[:cut]
        result.latency_s = time.perf_counter() - t0
        result.id = req.id
        return result

    @staticmethod
    def parse(data: dict[str, Any]) -> ChatResult:
        choice = data["choices"][0]
        message = choice.get("message") or {}
        usage = data.get("usage") or {}
        logprobs = None
        content_lp = (choice.get("logprobs") or {}).get("content") if isinstance(choice.get("logprobs"), dict) else None
        if content_lp:
            logprobs = [
                TokenLogprob(
                    token=item.get("token", ""),
                    logprob=float(item["logprob"]),
                    top=[
                        TopLogprob(token=t.get("token", ""), logprob=float(t["logprob"]))
                        for t in item.get("top_logprobs") or []
                    ],
                )
                for item in content_lp
            ]
        return ChatResult(
            text=message.get("content") or "",
            finish_reason=choice.get("finish_reason"),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            logprobs=logprobs,
            model=data.get("model"),
        )

    # ------------------------------------------------------------------ HTTP with retries

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:  # the server's word, plus jitter so waiters do not return together
            return min(retry_after * random.uniform(1.0, 1.2), self.backoff_max_s)
        return random.uniform(0, min(self.backoff_max_s, self.backoff_base_s * (2**attempt)))

    @staticmethod
    def _retry_after(value: str | None) -> float | None:
        """Seconds of a ``Retry-After`` header (delta-seconds; an HTTP date is ignored)."""
        if not value:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            return None

    def _request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        retries: int | None = None,
        tokens: int = 0,
    ) -> httpx.Response:
        retries = self.max_retries if retries is None else retries
        last = "no attempt made"
        for attempt in range(retries + 1):
            retry_after: float | None = None
            if self.request_bucket is not None:
                self.request_bucket.acquire(1)
            if self.token_bucket is not None and tokens:
                self.token_bucket.acquire(tokens)
            generation = self.concurrency.acquire()
            outcome = "error"
            with self._stats_lock:
                self.in_flight += 1
                self.attempts += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                response = self._client.request(method, path, json=body)
            except httpx.TransportError as exc:  # connect/read errors and timeouts
                response = None
                last = f"{type(exc).__name__}: {exc or 'no detail'}"
                if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
                    outcome = "overload"  # a server too slow to answer is a server to send less to
            finally:
                with self._stats_lock:
                    self.in_flight -= 1
            if response is not None:
                retry_after = self._retry_after(response.headers.get("retry-after"))
                if response.status_code < 400:
                    outcome = "ok"
                elif response.status_code in OVERLOAD_STATUS or retry_after is not None:
                    outcome = "overload"
            if outcome == "overload":
                with self._stats_lock:
                    self.throttled += 1
                # a 429 is about this client's quota: every request of it waits; a 503's
                # Retry-After (a server shedding load) holds back only the request it answered
                quota = response is not None and response.status_code == 429
                if quota and retry_after is not None and self.concurrency.adaptive:
                    self.concurrency.pause(min(retry_after, self.backoff_max_s))
            self.concurrency.release(generation, outcome)
            if outcome != "ok" and self.token_bucket is not None and tokens:
                self.token_bucket.adjust(tokens)  # a refused call used no tokens
            if response is not None:
                if response.status_code < 400:
                    return response
                last = f"HTTP {response.status_code}: {response.text[:300]}"
                if response.status_code not in RETRY_STATUS and response.status_code < 500:
                    raise _RequestFailed(f"{method} {self.base_url}{path}: {last}")
            if attempt < retries:
                time.sleep(self._backoff(attempt, retry_after))
        raise _RequestFailed(f"{method} {self.base_url}{path} failed after {retries + 1} attempts: {last}")

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._client.close()


class _RequestFailed(Exception):
    pass
