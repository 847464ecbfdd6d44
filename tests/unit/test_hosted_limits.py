"""Hosted-API limits of the OpenAI backend against a fault-injecting server on 127.0.0.1
(tests/fault_server.py): request rates measured from the server's arrival times, no lost
requests under 429/503/5xx/slow answers, AIMD concurrency backing off and growing again.
"Per minute" is "per ``window_s``" here (fractions of a second) so every test stays short."""

from __future__ import annotations

import threading

import pytest

from trustflow.models.llm.limits import AdaptiveConcurrency, RateBucket, cost_usd, estimate_tokens
from trustflow.models.llm.openai_backend import OpenAIBackend
from trustflow.tests.fault_server import Faults, FaultServer, max_in_window


def prompts(n: int) -> list[dict]:
    return [{"messages": [{"role": "user", "content": f"prompt number {i}"}], "max_tokens": 8} for i in range(n)]


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


def test_rate_bucket_never_lets_a_window_hold_more_than_the_limit() -> None:
    clock = FakeClock()
    bucket = RateBucket(60, window_s=60.0, clock=clock, sleep=clock.sleep)
    times = []
    for _ in range(400):
        bucket.acquire(1)
        times.append(clock.t)
    assert max_in_window(times, 60.0) <= 60
    # and it is not needlessly slow: 400 requests at ~60/min take about 400 s, not far more
    assert 330 < times[-1] < 430


def test_rate_bucket_tokens_estimate_then_correction() -> None:
    clock = FakeClock()
    bucket = RateBucket(1000, window_s=60.0, clock=clock, sleep=clock.sleep)
    bucket.acquire(50)  # the burst (1000 // 20) is spent
    assert bucket.acquire(50) > 0  # the next estimate waits for refill
    waited_before = clock.t
    bucket.adjust(+50)  # the call used fewer tokens than estimated: refunded
    assert bucket.acquire(50) == 0 and clock.t == waited_before


def test_token_estimates_count_cjk_per_character() -> None:
    assert estimate_tokens("abcdefgh") == 2
    assert estimate_tokens("用一句话介绍北京") == 8
    assert cost_usd(1000, 500, 0.5, 1.5) == pytest.approx(1.25)
    assert cost_usd(1000, 500, None, None) is None


def test_aimd_halves_once_per_generation_and_grows_after_successes() -> None:
    c = AdaptiveConcurrency(16)
    gens = [c.acquire() for _ in range(16)]
    for g in gens[:4]:  # a burst of overloads from the same generation: one cut
        c.release(g, "overload")
    assert c.limit == 8 and c.decreases == 1
    for g in gens[4:]:
        c.release(g, "ok")
    assert c.limit == 9  # 12 successes >= limit 8: +1
    g = c.acquire()
    c.release(g, "overload")  # a new generation: cut again
    assert c.limit == 4 and [limit for _, limit in c.history] == [16, 8, 9, 4]


def test_fixed_concurrency_does_not_adapt() -> None:
    c = AdaptiveConcurrency(8, adaptive=False)
    c.release(c.acquire(), "overload")
    assert c.limit == 8


def test_requests_per_window_measured_at_the_server_stay_under_rpm() -> None:
    with FaultServer(Faults(latency_s=0.002)) as srv:
        b = OpenAIBackend(srv.base_url, "m", max_concurrency=8, rpm=40, window_s=0.5)
        results = b.generate(prompts(60))
        b.close()
    assert all(r.ok for r in results)
    assert max_in_window(srv.all_times(), 0.5) <= 40
    assert len(srv.served) == 60


def test_tokens_per_window_stay_under_tpm() -> None:
    # every request is estimated at ~5 prompt + 8 completion tokens; tpm 130 per 0.5 s
    with FaultServer(Faults()) as srv:
        b = OpenAIBackend(srv.base_url, "m", max_concurrency=8, tpm=130, window_s=0.5)
        results = b.generate(prompts(20))
        b.close()
    assert all(r.ok for r in results)
    # each served request used 13-14 tokens: at most ~10 of them fit in any 0.5 s window
    assert max_in_window(srv.ok_times(), 0.5) <= 11


def test_no_request_lost_under_429_503_5xx_and_slow_answers() -> None:
    faults = Faults(p429=0.2, p503=0.1, p500=0.1, retry_after=0.02, p_slow=0.05, slow_s=0.3, seed=3)
    with FaultServer(faults) as srv:
        b = OpenAIBackend(
            srv.base_url, "m", max_concurrency=6, max_retries=12, backoff_base_s=0.01, backoff_max_s=0.1, timeout_s=0.15
        )
        results = b.generate(prompts(50))
        b.close()
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    assert sorted(set(srv.served)) == sorted(p["messages"][0]["content"] for p in prompts(50))
    statuses = {a.status for a in srv.arrivals}
    assert {200, 429, 503, 500} <= statuses and b.throttled > 0


def test_a_request_that_exhausts_its_retries_is_an_error_result_not_a_gap() -> None:
    with FaultServer(Faults(script=[503] * 4, retry_after=0.0)) as srv:
        b = OpenAIBackend(srv.base_url, "m", max_concurrency=1, max_retries=1, backoff_base_s=0.001)
        results = b.generate(prompts(3))
        b.close()
    assert [r.ok for r in results] == [False, False, True]
    assert "HTTP 503" in (results[0].error or "") and results[0].finish_reason == "error"


def test_adaptive_concurrency_backs_off_under_throttling_then_grows() -> None:
    # the server takes 3 at once; more in flight get 429 + Retry-After
    with FaultServer(Faults(hard_cap=3, latency_s=0.01, retry_after=0.02)) as srv:
        b = OpenAIBackend(srv.base_url, "m", max_concurrency=12, max_retries=20, backoff_max_s=0.1)
        results = b.generate(prompts(80))
        b.close()
    assert all(r.ok for r in results)
    limits = [limit for _, limit in b.concurrency.history]
    low = limits.index(min(limits))
    assert min(limits) <= 3 < 12  # backed off from 12 ...
    assert b.concurrency.increases > 0 and max(limits[low:]) > min(limits)  # ... and grew again
    rejected = sum(a.status == 429 for a in srv.arrivals)
    assert rejected < 40  # it stopped hammering: most of 80 requests went through first time


def test_retry_after_pauses_every_new_request() -> None:
    with FaultServer(Faults(script=[429], retry_after=0.3, latency_s=0.0)) as srv:
        b = OpenAIBackend(srv.base_url, "m", max_concurrency=1, max_retries=2)
        done = threading.Event()
        results = b.generate(prompts(2))
        done.set()
        b.close()
    assert all(r.ok for r in results)
    times = srv.all_times()
    assert times[1] - times[0] >= 0.3  # the retry (and everything after it) waited for Retry-After
