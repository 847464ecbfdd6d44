#!/usr/bin/env python
"""Hosted API under throttling: requests/s with adaptive (AIMD) vs fixed concurrency.

The fault server of the tests (tests/fault_server.py, 127.0.0.1) answers in ``--latency-ms``
and throttles one of two ways:

* **quota**: a provider's quota of ``--quota`` requests per second, refused requests
  included (OpenAI documents that unsuccessful requests count toward the limit); over it,
  429 + ``Retry-After`` = the time until the window frees a slot;
* **shedding**: ``--capacity`` requests at a time, the rest refused at once with 503 +
  ``Retry-After`` (a saturated inference server or its gateway).

The same ``--requests`` go through the OpenAI backend each way:

* **fixed N**: ``max_concurrency=N``, ``adaptive=False`` (the old pool; Retry-After honoured per request)
* **adaptive N**: the same ceiling, AIMD (halve on 503/429, +1 after a run of successes)

and a **quiet** pair with no throttling (capacity above the ceiling) to show adaptive costs
nothing when the server is healthy. Every arm must answer every request (``lost`` = results
with an error: 0 expected); the table gives requests/s, rejected attempts, the mean in-flight
limit the client settled at, and adaptive / fixed.

This is a benchmark, not a test: it exits 0 unless the adaptive client loses a request (the
fixed pool may: under the quota it burns its retries on refusals, which is the point).

    .venv/bin/python benchmarks/hosted_api.py [--requests 400] [--concurrency 16] [--capacity 4] [--latency-ms 50] [--retry-after 0.5]
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from trustflow.models.llm.openai_backend import OpenAIBackend
from trustflow.tests.fault_server import Faults, FaultServer


def arm(faults: Faults, requests: int, concurrency: int, adaptive: bool) -> dict[str, Any]:
    with FaultServer(faults) as srv:
        backend = OpenAIBackend(
            srv.base_url, "m", max_concurrency=concurrency, adaptive=adaptive, max_retries=50, backoff_max_s=5.0
        )
        prompts = [
            {"messages": [{"role": "user", "content": f"request {i}"}], "max_tokens": 8} for i in range(requests)
        ]
        t0 = time.perf_counter()
        results = backend.generate(prompts)
        wall = time.perf_counter() - t0
        history = backend.concurrency.history
        backend.close()
        rejected = sum(a.status != 200 for a in srv.arrivals)
        served = len(set(srv.served))
    # time-weighted mean of the in-flight limit over the run
    points = [*history, (history[-1][0] + wall, history[-1][1])]
    span = points[-1][0] - points[0][0]
    mean_limit = sum((b[0] - a[0]) * a[1] for a, b in zip(points, points[1:], strict=False)) / span if span else 0
    return {
        "rps": requests / wall,
        "wall_s": wall,
        "lost": sum(not r.ok for r in results),
        "distinct_served": served,
        "rejected": rejected,
        "mean_limit": mean_limit,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--capacity", type=int, default=4)
    ap.add_argument("--latency-ms", type=float, default=50.0)
    ap.add_argument("--retry-after", type=float, default=0.5)
    ap.add_argument("--quota", type=int, default=40, help="quota scene: requests per second")
    args = ap.parse_args()
    lat = args.latency_ms / 1000
    scenes = {
        "quota": Faults(
            quota=args.quota, quota_window_s=1.0, count_refused=True, latency_s=lat, retry_after=args.retry_after
        ),
        "shedding": Faults(hard_cap=args.capacity, cap_status=503, latency_s=lat, retry_after=args.retry_after),
        "quiet": Faults(latency_s=lat),
    }
    rows = []
    for scene, faults in scenes.items():
        fixed = arm(faults, args.requests, args.concurrency, adaptive=False)
        adaptive = arm(faults, args.requests, args.concurrency, adaptive=True)
        rows.append((scene, fixed, adaptive))
    print(
        f"{args.requests} requests, ceiling {args.concurrency} in flight, {args.latency_ms:g} ms per answer; "
        f"quota: {args.quota}/s counting refused requests, over it 429 + Retry-After until a slot frees; "
        f"shedding: {args.capacity} at a time, 503 + Retry-After above that"
    )
    print("| server | client | req/s | wall s | rejected attempts | mean limit | lost | adaptive / fixed |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    lost = 0
    for scene, fixed, adaptive in rows:
        for name, r in (("fixed", fixed), ("adaptive", adaptive)):
            ratio = f"{adaptive['rps'] / fixed['rps']:.2f}x" if name == "adaptive" else ""
            print(
                f"| {scene} | {name} {args.concurrency} | {r['rps']:.1f} | {r['wall_s']:.2f} | {r['rejected']} | "
                f"{r['mean_limit']:.1f} | {r['lost']} | {ratio} |"
            )
            if name == "adaptive":  # the fixed pool may lose requests when it collapses: that is the finding
                lost += r["lost"] + (args.requests - r["distinct_served"])
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
