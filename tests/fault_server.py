"""A small OpenAI-compatible chat server on 127.0.0.1 that injects faults, for tests and
benchmarks/hosted_api.py: 429 with ``Retry-After``, 503, other 5xx, slow answers, a
server-side requests-per-window quota and an overload model (answers slow down when more
than ``capacity`` requests are in flight; above ``hard_cap`` it answers 429).

Every arrival is recorded (monotonic time, status, in-flight count, the request's prompt),
so a test measures the client's request rate instead of assuming it. Replies are a pure
function of the prompt, with ``usage`` token counts (prompt: characters / 4 + 1;
completion: ``min(max_tokens, completion_tokens)``).
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Faults:
    """What the server does to each arrival (checked in this order)."""

    script: list[int] = field(default_factory=list)  # statuses for the first arrivals (200 = serve)
    quota: int | None = None  # at most this many served requests per ``quota_window_s``; over: 429
    quota_window_s: float = 1.0
    # count refused requests against the quota too (OpenAI's docs: "unsuccessful requests
    # contribute to your per-minute limit"); Retry-After is then the time until a slot frees
    count_refused: bool = False
    hard_cap: int | None = None  # in flight above this: ``cap_status`` at once (load shedding)
    cap_status: int = 429
    p429: float = 0.0
    p503: float = 0.0
    p500: float = 0.0
    retry_after: float | None = 0.05  # seconds sent with every 429/503 (None: no header)
    latency_s: float = 0.0  # every served answer
    capacity: int | None = None  # in flight above this: each extra request adds excess_latency
    excess_latency: float = 0.5  # fraction of latency_s added per request over capacity
    p_slow: float = 0.0
    slow_s: float = 0.0
    completion_tokens: int = 8
    seed: int = 0


@dataclass
class Arrival:
    t: float
    status: int
    in_flight: int
    prompt: str


class FaultServer:
    """``with FaultServer(Faults(...)) as srv:`` → ``srv.base_url`` (``http://127.0.0.1:PORT/v1``)."""

    def __init__(self, faults: Faults | None = None, model: str = "fault-model") -> None:
        self.faults = faults or Faults()
        self.model = model
        self.arrivals: list[Arrival] = []
        self.served: list[str] = []  # prompts answered 200, in order
        self.in_flight = 0
        self.max_in_flight = 0
        self._served_times: deque[float] = deque()  # quota window: served (and counted refused) arrivals
        self._lock = threading.Lock()
        self._rng = random.Random(self.faults.seed)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                return None

            def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self) -> None:
                self._send(200, {"object": "list", "data": [{"id": server.model, "object": "model"}]})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                status, delay, headers = server._admit(body)
                try:
                    if delay:
                        time.sleep(delay)
                    if status != 200:
                        self._send(status, {"error": {"message": f"injected {status}"}}, headers)
                        return
                    self._send(200, server._completion(body))
                finally:
                    with server._lock:
                        server.in_flight -= 1

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True, name="fault-server")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def _admit(self, body: dict[str, Any]) -> tuple[int, float, dict[str, str]]:
        """(status, seconds to wait before answering, headers) for one arrival."""
        f = self.faults
        prompt = str((body.get("messages") or [{}])[-1].get("content", ""))
        with self._lock:
            now = time.monotonic()
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            status = 200
            n = len(self.arrivals)
            while self._served_times and now - self._served_times[0] >= f.quota_window_s:
                self._served_times.popleft()
            if n < len(f.script):
                status = f.script[n]
            elif f.quota is not None and len(self._served_times) >= f.quota:
                status = 429
            elif f.hard_cap is not None and self.in_flight > f.hard_cap:
                status = f.cap_status
            else:
                draw = self._rng.random()
                if draw < f.p429:
                    status = 429
                elif draw < f.p429 + f.p503:
                    status = 503
                elif draw < f.p429 + f.p503 + f.p500:
                    status = 500
            delay = 0.0
            if status == 200:
                self._served_times.append(now)
                excess = max(0, self.in_flight - f.capacity) if f.capacity is not None else 0
                delay = f.latency_s * (1.0 + f.excess_latency * excess)
                if f.p_slow and self._rng.random() < f.p_slow:
                    delay += f.slow_s
                self.served.append(prompt)
            elif f.count_refused and f.quota is not None:
                self._served_times.append(now)
            self.arrivals.append(Arrival(now, status, self.in_flight, prompt))
            retry_after = f.retry_after
            if status == 429 and f.quota is not None and self._served_times and retry_after is not None:
                retry_after = max(0.01, self._served_times[0] + f.quota_window_s - now)
        headers = {}
        if status in (429, 503) and retry_after is not None:
            headers["Retry-After"] = f"{retry_after:.3f}"
        return status, delay, headers

    def _completion(self, body: dict[str, Any]) -> dict[str, Any]:
        prompt = "".join(str(m.get("content", "")) for m in body.get("messages") or [])
        completion = min(int(body.get("max_tokens") or 16), self.faults.completion_tokens)
        return {
            "id": "chatcmpl-fault",
            "object": "chat.completion",
            "model": body.get("model") or self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": f"I cannot help with that. [{len(prompt)}]"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": len(prompt) // 4 + 1,
                "completion_tokens": completion,
                "total_tokens": len(prompt) // 4 + 1 + completion,
            },
        }

    def ok_times(self) -> list[float]:
        with self._lock:
            return [a.t for a in self.arrivals if a.status == 200]

    def all_times(self) -> list[float]:
        with self._lock:
            return [a.t for a in self.arrivals]

    def start(self) -> FaultServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def max_in_window(times: list[float], window_s: float) -> int:
    """The most arrivals in any window of ``window_s`` seconds (a sliding window over sorted times)."""
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= window_s:
            lo += 1
        best = max(best, hi - lo + 1)
    return best
