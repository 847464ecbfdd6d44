"""Client-side limits for hosted chat endpoints: rate buckets, adaptive concurrency, token estimates.

A hosted API sells a quota (requests and tokens per minute) and answers overload with 429/503
and a ``Retry-After``. Sending faster than the quota only buys rejections that still cost a
round trip, and a fixed pool of threads keeps hammering a server that is already saturated.

- :class:`RateBucket`: a token bucket sized so that **any** window of ``window_s`` seconds
  holds at most ``limit`` units (burst ``b`` plus refill ``(limit - b) / window_s``), which is
  what a provider's sliding-window counter checks. Used for requests (1 unit per attempt) and
  tokens (estimated before the call, corrected by the true count after it).
- :class:`AdaptiveConcurrency`: AIMD on the number of requests in flight. Halve on an
  overload signal (429, 503, 529, a read timeout, or any ``Retry-After``), at most once per
  "generation" of requests (answers to requests sent before the last cut do not cut again);
  grow by one after ``limit`` successes in a row. A 429's ``Retry-After`` also pauses every
  new request until it has passed (:meth:`AdaptiveConcurrency.pause`). With
  ``adaptive=False`` the limit stays fixed (the old pool).
- :func:`estimate_tokens`: a cheap upper-leaning guess of a prompt's tokens from its text
  (CJK characters ~1 token each, other text ~4 characters per token, a few per message), used
  by the rate bucket before a call and by ``seval run --dry-run`` for cost estimates.

``window_s`` is a parameter (not a hard 60) so tests express "per minute" as "per second".
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence

MESSAGE_OVERHEAD_TOKENS = 4  # role markers and separators of the chat template, per message


def estimate_tokens(text: str) -> int:
    """Tokens of ``text``, estimated without a tokenizer: CJK ideographs and kana count one
    each (BPE vocabularies rarely merge them), every other 4 characters one."""
    cjk = sum(
        1 for ch in text if "\u3040" <= ch <= "\u30ff" or "\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff"
    )
    other = len(text) - cjk
    return cjk + -(-other // 4)


def estimate_prompt_tokens(messages: Sequence[Mapping[str, str]]) -> int:
    """Prompt tokens of a conversation: every message's text plus the template overhead."""
    return sum(estimate_tokens(m.get("content", "")) + MESSAGE_OVERHEAD_TOKENS for m in messages)


def cost_usd(
    prompt_tokens: int, completion_tokens: int, price_prompt: float | None, price_completion: float | None
) -> float | None:
    """Dollars for one call at prices per 1,000 tokens; None when no price is set."""
    if price_prompt is None and price_completion is None:
        return None
    return (prompt_tokens * (price_prompt or 0.0) + completion_tokens * (price_completion or 0.0)) / 1000.0


class RateBucket:
    """At most ``limit`` units in any ``window_s`` window (see the module docstring).

    ``acquire(n)`` blocks until the bucket holds ``min(n, capacity)`` and then takes ``n``
    (the level may go below zero: a request bigger than the burst is let through when the
    bucket is full and its excess paid back by waiting). ``adjust(delta)`` returns
    (``delta`` > 0) or charges units after the fact, e.g. true tokens vs the estimate."""

    def __init__(
        self,
        limit: float,
        window_s: float = 60.0,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if limit <= 0 or window_s <= 0:
            raise ValueError("a rate limit and its window must be > 0")
        self.limit = float(limit)
        self.window_s = float(window_s)
        self.capacity = float(burst) if burst is not None else max(1.0, self.limit // 20)
        self.capacity = min(self.capacity, self.limit)
        # refill so that burst + refill * window == limit: no window ever holds more than limit
        self.rate = max(self.limit - self.capacity, self.limit * 0.05) / self.window_s
        self._clock, self._sleep = clock, sleep
        self._level = self.capacity
        self._stamp = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._level = min(self.capacity, self._level + (now - self._stamp) * self.rate)
        self._stamp = now

    def acquire(self, n: float = 1.0) -> float:
        """Take ``n`` units, waiting as long as needed; returns the seconds waited."""
        need = min(float(n), self.capacity)
        waited = 0.0
        while True:
            with self._lock:
                self._refill()
                if self._level >= need - 1e-9:  # tolerance: float refill may land a hair short
                    self._level -= float(n)
                    return waited
                wait = max((need - self._level) / self.rate, 1e-4)
            self._sleep(wait)
            waited += wait

    def adjust(self, delta: float) -> None:
        with self._lock:
            self._refill()
            self._level = min(self.capacity, self._level + delta)


class AdaptiveConcurrency:
    """How many requests may be in flight: AIMD between ``minimum`` and ``maximum``.

    ``acquire()`` blocks while ``limit`` requests are in flight or a ``Retry-After`` pause is
    on, and returns the generation the request belongs to; ``release(generation, outcome)``
    with ``outcome`` one of ``"ok"``, ``"overload"``, ``"error"``. ``pause(seconds)``
    holds every new request back (a server's ``Retry-After`` speaks for the whole client)."""

    def __init__(
        self,
        maximum: int,
        initial: int | None = None,
        minimum: int = 1,
        adaptive: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.maximum = max(1, maximum)
        self.minimum = max(1, min(minimum, self.maximum))
        self.adaptive = adaptive
        self.limit = self.maximum if initial is None else max(self.minimum, min(initial, self.maximum))
        self.in_flight = 0
        self.generation = 0  # bumped on every cut: older requests' overloads are the same event
        self.successes = 0
        self.decreases = 0
        self.increases = 0
        self.history: list[tuple[float, int]] = [(clock(), self.limit)]  # (time, limit) at each change
        self._paused_until = 0.0
        self._clock = clock
        self._cond = threading.Condition()

    def acquire(self) -> int:
        with self._cond:
            while True:
                now = self._clock()
                if now < self._paused_until:
                    self._cond.wait(self._paused_until - now)
                    continue
                if self.in_flight < self.limit:
                    self.in_flight += 1
                    return self.generation
                self._cond.wait(0.5)

    def pause(self, seconds: float) -> None:
        if seconds <= 0:
            return
        with self._cond:
            self._paused_until = max(self._paused_until, self._clock() + seconds)

    def release(self, generation: int, outcome: str) -> None:
        with self._cond:
            self.in_flight -= 1
            if self.adaptive:
                if outcome == "overload":
                    self.successes = 0
                    if generation == self.generation and self.limit > self.minimum:
                        self.limit = max(self.minimum, self.limit // 2)
                        self.generation += 1
                        self.decreases += 1
                        self.history.append((self._clock(), self.limit))
                elif outcome == "ok":
                    self.successes += 1
                    if self.successes >= self.limit and self.limit < self.maximum:
                        self.limit += 1
                        self.successes = 0
                        self.increases += 1
                        self.history.append((self._clock(), self.limit))
                else:
                    self.successes = 0
            self._cond.notify_all()
