#!/usr/bin/env python
"""Storage-event relay: throughput, memory and latency, SeaweedFS → relay → Prefect server.

Starts its own SeaweedFS (``weed mini``) and Prefect server on free loopback ports (default
Prefect settings: the event persister flushes every 5 s), stops both at the end, and runs
the relay as users do (``trustflow events relay``, its own process) unless noted.

1. Memory: a live relay follows ``rss/`` while ``--objects`` (10,000) objects are PUT in
   steps (1k, 5k, 10k, and N/2 and N above 10k); after each step, once the server has stored every event, the
   relay process's RSS (and its ``weed filer.meta.tail`` child's) is read. Goal: flat.
2. Throughput (goal >= 500 objects/s): the same objects announced by a fresh relay
   (``--once``: catch up from the filer log and exit), end to end: from starting the
   relay process until the server has stored every event (``/api/events/filter``), and
   the relay's own loop time. Then where the time goes, in this process: the filer log
   replay alone, our parsing, filter + dedup + SQLite (no Prefect), the full relay with
   each transport (``rest``: batched ``POST /api/events``; ``emit-event``: one
   ``prefect.events.emit_event`` per object through Prefect's events worker).
3. Latency: ``--latency-objects`` (50) PUTs about 0.5 s apart; for each, the time from the
   PUT returning until the event reaches a subscriber of the server's event stream (what
   automations see; the stored copy follows within the persister's flush interval).
   Relay vs the baseline, a poller written here that lists the bucket every
   ``--poll-every`` (5) s and emits an event for each new or changed object. Both run at
   the same time on the same objects; median and p95.

This is a benchmark, not a test: it always exits 0 unless something breaks.

    .venv/bin/python benchmarks/event_relay.py [--objects 10000] [--latency-objects 50] [--poll-every 5] [--no-emit-event]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from load_monitor import OtherLoad  # sibling module (scripts run from benchmarks/)

GOAL_PER_S = 500
BUCKET = "bench"
RELAY = [sys.executable, "-c", "from trustflow.cli.events import events_app; events_app()", "relay"]
POLLER_EVENT = "bench.poller.object.created"


# ---- services --------------------------------------------------------------------------------
@dataclass
class Services:
    tmp: Path
    seaweedfs: Any = None
    prefect: Any = None
    env: dict[str, str] = field(default_factory=dict)

    def up(self) -> None:
        from trustflow.infra.local_credentials import ensure_local_credentials
        from trustflow.infra.prefect_server import PrefectServer
        from trustflow.infra.processes import free_port, free_port_with_grpc
        from trustflow.infra.seaweedfs import SeaweedFS
        from trustflow.settings import SeaweedFSConfig

        ensure_local_credentials(self.tmp / "home")  # exports AWS_* (an existing pair wins)
        ports: list[int] = []
        while len(ports) < 4:
            p = free_port_with_grpc()
            if all(abs(p - q) not in (0, 10000) for q in ports):
                ports.append(p)
        config = SeaweedFSConfig(
            s3_port=ports[0], master_port=ports[1], volume_port=ports[2], filer_port=ports[3], bucket=BUCKET
        )
        self.seaweedfs = SeaweedFS(self.tmp / "seaweedfs", config)
        self.prefect = PrefectServer(self.tmp / "prefect-server", free_port())
        t0 = time.perf_counter()
        self.seaweedfs.up(timeout_s=120)
        self.prefect.up(timeout_s=180)
        print(f"SeaweedFS and Prefect server up in {time.perf_counter() - t0:.1f}s", flush=True)
        self.env = dict(
            os.environ,
            TRUSTFLOW_HOME=str(self.tmp / "home"),
            TRUSTFLOW_STORE_URL=f"s3://{BUCKET}",
            TRUSTFLOW_S3_ENDPOINT_URL=self.seaweedfs.endpoint_url,
            TRUSTFLOW_SEAWEEDFS__FILER_PORT=str(config.filer_port),
            TRUSTFLOW_SEAWEEDFS__BUCKET=BUCKET,
            PREFECT_API_URL=self.prefect.api_url,
        )

    def down(self) -> None:
        if self.prefect is not None:
            self.prefect.down()
        if self.seaweedfs is not None:
            self.seaweedfs.down()

    @property
    def filer(self) -> str:
        return f"127.0.0.1:{self.seaweedfs.config.filer_port}"

    def s3(self) -> Any:
        from trustflow.data.store.location import s3_client
        from trustflow.settings import load_settings

        return s3_client(load_settings(s3_endpoint_url=self.seaweedfs.endpoint_url))


def put_objects(s3: Any, keys: Sequence[str], threads: int = 16) -> float:
    """PUT small distinct objects; returns objects/s."""
    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=BUCKET, Key=k, Body=k.encode()), keys))
    return len(keys) / (time.perf_counter() - t0)


def stored_count(
    api_url: str, id_prefix: str, since: datetime, names: Sequence[str] = ("trustflow.object.created",)
) -> int:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter, EventResourceFilter

    flt = EventFilter(
        occurred=EventOccurredFilter(since=since, until=datetime.now(UTC) + timedelta(hours=1)),
        event=EventNameFilter(name=list(names)),
        resource=EventResourceFilter(id_prefix=[id_prefix]),
    )
    with SyncPrefectClient(api_url) as client:
        return client.read_events(flt, limit=1).total


SERVER_DROP = "Subscription queue is full, dropping message"


def server_drops(svc: Services) -> int:
    """Events the Prefect server accepted and then dropped: its in-memory broker holds 10,000
    messages per subscription (hard-coded in prefect/server/utilities/messaging/memory.py) and
    drops the rest when the event persister falls behind — a 200 from POST /api/events does not
    mean stored. Counted from the server's log."""
    try:
        return svc.prefect.process.log_file.read_text(errors="replace").count(SERVER_DROP)
    except OSError:
        return 0


def wait_until(
    check: Callable[[], bool], timeout_s: float, what: str, step_s: float = 0.25, svc: Services | None = None
) -> float:
    t0 = time.perf_counter()
    while not check():
        if svc is not None and server_drops(svc):
            raise RuntimeError(f"{what}: the Prefect server dropped {server_drops(svc)} accepted events (queue full)")
        if time.perf_counter() - t0 > timeout_s:
            raise RuntimeError(f"not within {timeout_s:.0f}s: {what}")
        time.sleep(step_s)
    return time.perf_counter()


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def start_relay(svc: Services, prefix: str, state: Path, *extra: str) -> subprocess.Popen[str]:
    args = [*RELAY, "--prefix", prefix, "--state-dir", str(state), "--stats-every", "5", *extra]
    return subprocess.Popen(args, env=svc.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop_relay(proc: subprocess.Popen[str]) -> dict[str, Any]:
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"relay exited {proc.returncode}: {err[-2000:]}")
    return json.loads(out[out.index("{") :])


# ---- 1. memory ---------------------------------------------------------------------------------
def memory_phase(svc: Services, n: int) -> list[dict[str, float]]:
    s3 = svc.s3()
    prefix = "rss/"
    steps = sorted({min(n, 1000), min(n, 5000), min(n, 10_000), max(n // 2, min(n, 10_000)), n})
    relay = start_relay(svc, prefix, svc.tmp / "state-rss")
    rows = []
    since = datetime.now(UTC) - timedelta(minutes=1)
    written = 0
    try:
        for step in steps:
            keys = [f"{prefix}x-o{i:07d}" for i in range(written, step)]
            rate = put_objects(s3, keys)
            t_written = time.perf_counter()
            written = step
            t_seen = wait_until(  # 300 s, plus 20 ms per new object for the large steps of a 100k run
                lambda step=step, since=since: (
                    stored_count(svc.prefect.api_url, f"s3://{BUCKET}/{prefix}", since) >= step
                ),
                300 + 0.02 * (step - rows[-1]["objects"] if rows else step),
                f"{step} events stored",
                svc=svc,
            )
            kids = children(relay.pid)
            rows.append(
                {
                    "objects": step,
                    "put_per_s": rate,
                    "lag_s": t_seen - t_written,
                    "relay_rss_mb": rss_mb(relay.pid),
                    "tail_rss_mb": sum(rss_mb(k) for k in kids) if kids else float("nan"),
                }
            )
            print(f"  {step} objects: relay RSS {rows[-1]['relay_rss_mb']:.0f} MB", flush=True)
    finally:
        stats = stop_relay(relay)
    print(f"  live relay stats: {stats}", flush=True)
    return rows


# ---- 2. throughput -----------------------------------------------------------------------------
def catch_up_cli(svc: Services, prefix: str, n: int, transport: str) -> dict[str, float]:
    """A fresh relay process announces ``n`` logged objects; timed until the server stored them."""
    since = datetime.now(UTC)
    state = svc.tmp / f"state-cli-{transport}-{uuid.uuid4().hex[:6]}"
    t0 = time.perf_counter()
    run = subprocess.run(
        [*RELAY, "--prefix", prefix, "--state-dir", str(state), "--once", "--transport", transport],
        env=svc.env, capture_output=True, text=True, timeout=600 + n / 100,
    )  # fmt: skip
    t_exit = time.perf_counter()
    if run.returncode != 0:
        raise RuntimeError(f"relay --once failed: {run.stderr[-2000:]}")
    stats = json.loads(run.stdout[run.stdout.index("{") :])
    t_stored = wait_until(
        lambda: stored_count(svc.prefect.api_url, f"s3://{BUCKET}/{prefix}", since) >= n,
        600 + n / 100,
        f"{n} events stored",
        0.1,
        svc,
    )
    return {
        "loop_s": stats["seconds"],
        "process_s": t_exit - t0,
        "stored_s": t_stored - t0,
        "created": stats["created"],
    }


class NullTransport:
    name = "none"

    def send(self, events: Sequence[Any]) -> None:
        return None

    def close(self) -> None:
        return None


def breakdown(svc: Services, prefixes: tuple[str, str], n: int, with_emit_event: bool) -> list[tuple[str, float]]:
    """Seconds for ``n`` objects at each stage of the pipeline, all in this process.

    ``prefixes``: one for the rest arm, one for the emit-event arm (fresh event ids each)."""
    import prefect.events  # noqa: F401  imported before timing (about 0.5 s on first import)

    from trustflow.infra.event_relay.emitter import make_transport
    from trustflow.infra.event_relay.relay import Relay
    from trustflow.infra.event_relay.sources import make_source
    from trustflow.infra.event_relay.state import RelayState
    from trustflow.settings import load_settings

    settings = load_settings(home=svc.tmp / "home")
    options: dict[str, Any] = {"bucket": BUCKET, "prefix": prefixes[0], "filer": svc.filer, "once": True}
    rows: list[tuple[str, float]] = []

    src = make_source("seaweedfs", settings, **options)
    t0 = time.perf_counter()
    subprocess.run(src.argv(0), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    rows.append(("weed filer.meta.tail -> /dev/null (log replay + JSON printing)", time.perf_counter() - t0))

    with RelayState(svc.tmp / f"state-parse-{uuid.uuid4().hex[:6]}", src.stream) as state:
        t0 = time.perf_counter()
        src.open(state)
        seen = 0
        while True:
            batch = src.poll(500, 0.5)
            seen += len(batch.events)
            if not batch.events and src.caught_up():
                break
        src.close()
        rows.append((f"+ parse records in Python (source only, {seen} events)", time.perf_counter() - t0))

    arms: list[tuple[str, Any, str]] = [("+ filter, dedup, SQLite record (no Prefect)", NullTransport(), prefixes[0])]
    arms.append(
        (
            "+ Prefect, transport rest (POST /api/events, 500 per request)",
            make_transport("rest", svc.prefect.api_url),
            prefixes[0],
        )
    )
    if with_emit_event:
        arms.append(
            (
                "+ Prefect, transport emit-event (prefect.events.emit_event)",
                make_transport("emit-event", svc.prefect.api_url),
                prefixes[1],
            )
        )
    for label, transport, prefix in arms:
        src = make_source("seaweedfs", settings, **{**options, "prefix": prefix})
        with RelayState(svc.tmp / f"state-arm-{uuid.uuid4().hex[:6]}", src.stream) as state:
            t0 = time.perf_counter()
            stats = Relay(src, state, transport, poll_timeout_s=0.5).run(once=True)
            rows.append((f"{label} [{stats.created} announced]", time.perf_counter() - t0))
        transport.close()
    return rows


# ---- 3. latency --------------------------------------------------------------------------------
class Subscriber(threading.Thread):
    """Records when each (event name, key) first arrives on the server's event stream."""

    def __init__(self, api_url: str, id_prefix: str, names: Sequence[str]) -> None:
        super().__init__(name="subscriber", daemon=True)
        self.api_url, self.id_prefix, self.names = api_url, id_prefix, list(names)
        self.arrivals: dict[tuple[str, str], float] = {}
        self.ready = threading.Event()

    def run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        from prefect.events.clients import PrefectEventSubscriber
        from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter, EventResourceFilter

        now = datetime.now(UTC)
        flt = EventFilter(
            occurred=EventOccurredFilter(since=now, until=now + timedelta(days=1)),
            event=EventNameFilter(name=self.names),
            resource=EventResourceFilter(id_prefix=[self.id_prefix]),
        )
        async with PrefectEventSubscriber(api_url=self.api_url, filter=flt) as events:
            self.ready.set()
            async for event in events:
                self.arrivals.setdefault((event.event, event.resource["trustflow.key"]), time.time())


class Poller(threading.Thread):
    """The baseline: list the bucket every ``every_s`` seconds, announce new or changed keys."""

    def __init__(self, svc: Services, prefix: str, every_s: float) -> None:
        super().__init__(name="poller", daemon=True)
        self.svc, self.prefix, self.every_s = svc, prefix, every_s
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.polls = 0

    def listing(self, s3: Any) -> dict[str, str]:
        out: dict[str, str] = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=self.prefix):
            for obj in page.get("Contents", []):
                out[obj["Key"]] = obj["ETag"].strip('"')
        return out

    def run(self) -> None:
        from prefect.events import Event

        from trustflow.infra.event_relay.emitter import RestTransport

        s3 = self.svc.s3()
        transport = RestTransport(self.svc.prefect.api_url)
        known = self.listing(s3)  # what exists at start is not news
        self.ready.set()
        while not self.stop.wait(self.every_s):
            current = self.listing(s3)
            self.polls += 1
            fresh = [(k, e) for k, e in current.items() if known.get(k) != e]
            if fresh:
                transport.send(
                    [
                        Event(
                            event=POLLER_EVENT,
                            resource={
                                "prefect.resource.id": f"s3://{BUCKET}/{k}",
                                "trustflow.key": k,
                                "trustflow.etag": e,
                            },
                            payload={"etag": e},
                        )
                        for k, e in fresh
                    ]
                )
            known = current
        transport.close()


def latency_phase(svc: Services, n: int, poll_every: float) -> dict[str, list[float]]:
    s3 = svc.s3()
    prefix = "lat/"
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}warmup", Body=b"w")
    subscriber = Subscriber(svc.prefect.api_url, f"s3://{BUCKET}/{prefix}", ["trustflow.object.created", POLLER_EVENT])
    subscriber.start()
    subscriber.ready.wait(30)
    relay = start_relay(svc, prefix, svc.tmp / "state-lat")
    poller = Poller(svc, prefix, poll_every)
    poller.start()
    poller.ready.wait(30)
    wait_until(lambda: ("trustflow.object.created", f"{prefix}warmup") in subscriber.arrivals, 60, "relay ready")
    put_done: dict[str, float] = {}
    rng = random.Random(20261124)
    try:
        for i in range(n):
            key = f"{prefix}o{i:03d}"
            s3.put_object(Bucket=BUCKET, Key=key, Body=f"latency {i}".encode())
            put_done[key] = time.time()
            time.sleep(rng.uniform(0.3, 0.7))
        wait_until(
            lambda: all((name, k) in subscriber.arrivals for k in put_done for name in ("trustflow.object.created", POLLER_EVENT)),
            poll_every * 3 + 30, "every object announced by both",
        )  # fmt: skip
    finally:
        poller.stop.set()
        stop_relay(relay)
    return {
        label: [subscriber.arrivals[(name, k)] - t for k, t in put_done.items()]
        for label, name in (
            ("relay (filer.meta.tail)", "trustflow.object.created"),
            (f"poll listing every {poll_every:g}s", POLLER_EVENT),
        )
    }


# ---- report ------------------------------------------------------------------------------------
def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def report(
    n: int,
    memory: list[dict[str, float]],
    cli: dict[str, dict[str, float]],
    parts: list[tuple[str, float]],
    lat: dict[str, list[float]],
) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=150)
    t = Table(title=f"Relay memory, live, following {n:,} PUTs (goal: flat)")
    for col in ("objects", "PUT/s", "last PUT -> all stored (s)", "relay RSS (MB)", "weed tail RSS (MB)"):
        t.add_column(col, justify="right")
    for r in memory:
        t.add_row(
            f"{r['objects']:,}",
            f"{r['put_per_s']:.0f}",
            f"{r['lag_s']:.1f}",
            f"{r['relay_rss_mb']:.0f}",
            f"{r['tail_rss_mb']:.0f}",
        )
    console.print(t)
    if len(memory) >= 2:
        first, last = memory[0], memory[-1]
        console.print(
            f"relay RSS {last['objects']:,} vs {first['objects']:,} objects: {last['relay_rss_mb'] / first['relay_rss_mb']:.2f}x "
            f"(+{last['relay_rss_mb'] - first['relay_rss_mb']:.0f} MB)", highlight=False,
        )  # fmt: skip

    t = Table(title=f"Relay throughput, catch-up of {n:,} logged objects, fresh state (goal >= {GOAL_PER_S}/s)")
    for col in (
        "transport",
        "relay loop obj/s",
        "process start->exit (s)",
        "start -> all stored (s)",
        "end-to-end obj/s",
        "/ goal",
    ):
        t.add_column(col, justify="right")
    for name, r in cli.items():
        e2e = n / r["stored_s"]
        t.add_row(
            name,
            f"{n / r['loop_s']:.0f}",
            f"{r['process_s']:.1f}",
            f"{r['stored_s']:.1f}",
            f"{e2e:.0f}",
            f"{e2e / GOAL_PER_S:.2f}",
        )
    console.print(t)

    t = Table(title=f"Where the time goes: {n:,} objects, in-process, cumulative stages")
    for col in ("stage", "seconds", "objects/s", "ms/object added"):
        t.add_column(col, justify="right" if col != "stage" else "left")
    for i, (label, secs) in enumerate(parts):
        base = parts[min(i - 1, 2)][1] if i > 0 else 0.0  # Prefect arms are compared with "no Prefect"
        t.add_row(label, f"{secs:.2f}", f"{n / secs:.0f}", f"{(secs - base) / n * 1000:+.3f}")
    console.print(t)

    t = Table(title="Latency: PUT returned -> event on the server's stream (what triggers see)")
    for col in ("announcer", "n", "median (s)", "p95 (s)", "max (s)"):
        t.add_column(col, justify="right")
    for name, values in lat.items():
        t.add_row(
            name, str(len(values)), f"{statistics.median(values):.3f}", f"{p95(values):.3f}", f"{max(values):.3f}"
        )
    console.print(t)
    names = list(lat)
    if len(names) == 2:
        a, b = (statistics.median(lat[k]) for k in names)
        console.print(f"median latency {names[1]} / {names[0]}: {b / a:.0f}x", highlight=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--objects", type=int, default=10_000)
    ap.add_argument("--latency-objects", type=int, default=50)
    ap.add_argument("--poll-every", type=float, default=5.0, help="baseline poller interval in seconds (default 5)")
    ap.add_argument("--no-emit-event", action="store_true", help="skip the emit-event transport arms")
    args = ap.parse_args()
    if args.objects < 1 or args.latency_objects < 1 or args.poll_every <= 0:
        ap.error("--objects, --latency-objects and --poll-every must be positive")

    started = time.perf_counter()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally: stop our services
    tmp = Path(tempfile.mkdtemp(prefix="trustflow-bench-relay-"))
    (tmp / "prefect-home").mkdir()
    os.environ.setdefault("PREFECT_HOME", str(tmp / "prefect-home"))
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ.pop("PREFECT_API_URL", None)
    svc = Services(tmp)
    load = OtherLoad()
    try:
        svc.up()
        os.environ["PREFECT_API_URL"] = svc.prefect.api_url  # before this process imports Prefect
        with load:
            print(f"1. memory: live relay, {args.objects:,} PUTs", flush=True)
            memory = memory_phase(svc, args.objects)
            print("2. throughput: catch-up runs", flush=True)
            # The relay's event ids are per stream (which includes the prefix) and Prefect
            # stores an id once, so every arm follows a different prefix naming the same keys.
            cli = {"rest": catch_up_cli(svc, "rss/x", args.objects, "rest")}
            if not args.no_emit_event:
                cli["emit-event"] = catch_up_cli(svc, "rss/x-", args.objects, "emit-event")
            parts = breakdown(svc, ("rss/x-o", "rss/x-o0"), args.objects, not args.no_emit_event)
            print(f"3. latency: {args.latency_objects} PUTs, relay vs polling every {args.poll_every:g}s", flush=True)
            lat = latency_phase(svc, args.latency_objects, args.poll_every)
    finally:
        svc.down()
        shutil.rmtree(tmp, ignore_errors=True)
    report(args.objects, memory, cli, parts, lat)
    print(load.summary())
    print(f"total {time.perf_counter() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
