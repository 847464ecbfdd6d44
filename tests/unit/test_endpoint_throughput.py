"""HTTP targets keep the configured number of requests in flight, measured by a real local
HTTP server that records how many requests it is serving when each one arrives."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pyarrow as pa
import pytest

from trustflow.data.store import ArtifactStore, StageRef
from trustflow.models.llm.base import GenParams
from trustflow.settings import Settings
from trustflow.tasks.seval.responses import generate_responses


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.in_flight = 0
        self.seen_at_arrival: list[int] = []  # requests being served when one arrived (itself included)
        self.payloads: list[dict[str, Any]] = []
        self.changes: list[tuple[float, int]] = []  # (time, requests in flight after the change)

    def busy_share(self, level: int) -> float:
        """Mean in-flight / ``level`` over the span from the first time ``level`` requests were in
        flight to the last arrival: 1.0 means the server never waited for the client."""
        start = next(t for t, k in self.changes if k == level)
        end = max(t for (t, _), k in zip(self.changes, self._arrivals(), strict=True) if k)
        area = 0.0
        for (t0, k), (t1, _) in zip(self.changes, self.changes[1:], strict=False):
            lo, hi = max(t0, start), min(t1, end)
            if hi > lo:
                area += k * (hi - lo)
        return area / (level * (end - start))

    def _arrivals(self) -> list[bool]:
        return [b > a for (_, a), (_, b) in zip([(0.0, 0), *self.changes], self.changes, strict=False)]


@pytest.fixture()
def server() -> Iterator[tuple[str, Recorder]]:
    rec = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._send({"data": [{"id": "tiny"}]})

        def do_POST(self) -> None:
            payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            prompt = payload["messages"][-1]["content"]
            with rec.lock:
                rec.in_flight += 1
                rec.seen_at_arrival.append(rec.in_flight)
                rec.changes.append((time.perf_counter(), rec.in_flight))
                rec.payloads.append(payload)
            # uneven latencies, like real answers of different lengths: a batch barrier shows
            time.sleep(0.03 + 0.02 * (int(prompt.split()[-1]) % 5))
            with rec.lock:
                rec.in_flight -= 1
                rec.changes.append((time.perf_counter(), rec.in_flight))
            self._send(
                {
                    "model": payload.get("model"),
                    "choices": [{"message": {"content": f"echo {prompt}"}, "finish_reason": "length"}],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 5},
                }
            )

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"openai:http://127.0.0.1:{httpd.server_address[1]}/v1", rec
    finally:
        httpd.shutdown()
        httpd.server_close()


def _suite(n: int) -> pa.Table:
    return pa.table(
        {
            "prompt_uid": [f"p{i:03d}" for i in range(n)],
            "set": ["base_risk"] * n,
            "attack": pa.array([None] * n, pa.string()),
            "base_id": [f"b{i}" for i in range(n)],
            "lang": ["en"] * n,
            "dimension": ["d"] * n,
            "prompt": [f"prompt number {i}" for i in range(n)],
        }
    )


@pytest.mark.parametrize(("concurrency", "batch_size"), [(4, 4), (4, 8), (3, 2)])
def test_requests_in_flight_equal_concurrency(
    server: tuple[str, Recorder], local_settings: Settings, concurrency: int, batch_size: int
) -> None:
    spec, rec = server
    store = ArtifactStore(settings=local_settings)
    ref = StageRef("seval-evaluate", "run-x", "responses")
    n = 32
    stats = generate_responses(
        store,
        ref,
        _suite(n),
        spec,
        GenParams(max_tokens=16, temperature=0.0, seed=0),
        batch_size=batch_size,
        concurrency=concurrency,
    )
    assert stats["rows_written"] == n
    assert max(rec.seen_at_arrival) == concurrency  # never more than asked
    # each new request starts as a slot frees: until the last one is sent the server holds
    # `concurrency` requests (a batch barrier idles slots while a batch's slowest answer runs)
    assert rec.busy_share(concurrency) >= 0.85, rec.seen_at_arrival
    # exactly the run's generation parameters: nothing the server must compute extra
    for payload in rec.payloads:
        assert "logprobs" not in payload and "top_logprobs" not in payload
        assert payload["max_tokens"] == 16 and payload["temperature"] == 0.0
    store.writer(ref, *_keys()).commit({})
    table = store.read_table(ref)
    answers = dict(zip(table["prompt"].to_pylist(), table["response"].to_pylist(), strict=True))
    assert answers == {f"prompt number {i}": f"echo prompt number {i}" for i in range(n)}


def _keys() -> tuple[Any, list[str]]:
    from trustflow.data.schemas import SEVAL_RESPONSES
    from trustflow.tasks.seval.responses import RESPONSE_KEYS

    return SEVAL_RESPONSES, RESPONSE_KEYS


def test_http_targets_do_not_start_ray(server: tuple[str, Recorder], local_settings: Settings) -> None:
    spec, _ = server
    store = ArtifactStore(settings=local_settings)
    was_up = "ray" in sys.modules and sys.modules["ray"].is_initialized()
    generate_responses(
        store, StageRef("seval-evaluate", "run-y", "responses"), _suite(4), spec, GenParams(max_tokens=8)
    )
    if not was_up:
        assert "ray" not in sys.modules or not sys.modules["ray"].is_initialized()
