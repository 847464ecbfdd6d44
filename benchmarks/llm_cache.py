#!/usr/bin/env python
"""LLM response cache: what a lookup costs per call, next to the call it saves.

A fake chat backend answers in ``--latency-ms`` per batch (a fast local server; hosted APIs
take 0.5-5 s) and counts its requests. ``--calls`` single-turn prompts go through it in
batches of ``--batch``, four ways, each in a fresh cache object (a new run):

* **uncached call**: the fake backend alone (what every call costs without a cache)
* **miss** (first run): key + namespace listing + backend call + one segment write per batch
* **hit** (identical rerun): key + the listing (LIST + every segment's key column; a
  compaction when the batches left more than 64 small segments) + one row-group read per
  segment a batch touches, no backend call
* **hit, warm index**: a second rerun in the same cache object (the listing is not redone)

plus the same miss/hit arms with a zero-latency backend, which isolate the cache's own
overhead. Per-call times are medians over ``--repeat`` rounds; the table gives the ratio
of each arm to the uncached call, and the store objects under ``cache/`` per 1,000 entries
after the first run and after the rerun (compaction merges small segments), and the key
index's memory per key. ``--s3`` also runs the arms against a SeaweedFS started
here on free ports (stopped at the end).

This is a benchmark, not a test: it exits 0 unless something breaks.

    .venv/bin/python benchmarks/llm_cache.py [--calls 2000] [--batch 8] [--latency-ms 50] [--repeat 3] [--s3]
        [--index-keys 440000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from load_monitor import OtherLoad  # sibling module (scripts run from benchmarks/)

from trustflow.data.store import ArtifactStore
from trustflow.models.llm.base import ChatBackend, ChatRequest, ChatResult
from trustflow.models.llm.cache import CachedBackend, LLMCache, namespace_of

SPEC = "openai:http://127.0.0.1:9/v1#bench-model"  # fingerprinted from the spec: no server


class FakeBackend(ChatBackend):
    """Sleeps ``latency_s`` per batch, answers deterministically, counts requests."""

    name = "fake"

    def __init__(self, latency_s: float) -> None:
        super().__init__()
        self.latency_s = latency_s
        self.calls = 0

    def _generate(self, requests: list[ChatRequest]) -> list[ChatResult]:
        if self.latency_s:
            time.sleep(self.latency_s)
        self.calls += len(requests)
        return [
            ChatResult(text=f"answer to {r.messages[-1].content} " * 8, finish_reason="stop", completion_tokens=40)
            for r in requests
        ]


def batches(calls: int, batch: int, tag: str) -> list[list[ChatRequest]]:
    prompts = [
        f"{tag} prompt {i}: how would one go about a harmless benchmark question number {i}?" for i in range(calls)
    ]
    return [
        [ChatRequest.of(p, max_tokens=96, temperature=0.0, seed=0) for p in prompts[i : i + batch]]
        for i in range(0, calls, batch)
    ]


def gen_config_of(request: ChatRequest) -> dict:
    from trustflow.models.llm.cache import gen_config

    return gen_config(request)


def per_call_ms(backend: ChatBackend, work: list[list[ChatRequest]]) -> float:
    n = sum(len(b) for b in work)
    t0 = time.perf_counter()
    for b in work:
        backend.generate(b)
    return (time.perf_counter() - t0) / n * 1000


def cache_objects(store: ArtifactStore) -> int:
    """Objects under ``cache/`` (one recursive listing): what the cache costs the store."""
    import pyarrow.fs as pafs

    selector = pafs.FileSelector(store.path("cache"), recursive=True, allow_not_found=True)
    return sum(1 for i in store.fs.get_file_info(selector) if i.type == pafs.FileType.File)


def measure(store_of: Callable[[], ArtifactStore], calls: int, batch: int, latency_s: float, repeat: int) -> dict:
    out: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        out.setdefault(name, []).append(value)

    for _ in range(repeat):
        for latency, suffix in ((latency_s, ""), (0.0, " (0-latency backend)")):
            store = store_of()  # each arm its own store: object counts and compaction stay its own
            work = batches(calls, batch, uuid.uuid4().hex[:8])  # fresh keys each round
            inner = FakeBackend(latency)
            add("uncached call" + suffix, per_call_ms(inner, work))
            before = cache_objects(store)
            first = CachedBackend(FakeBackend(latency), SPEC, LLMCache(store))
            add("miss (first run)" + suffix, per_call_ms(first, work))
            assert first.inner.calls == calls and first.stats.writes == calls
            add("objects per 1,000 entries, first run" + suffix, (cache_objects(store) - before) * 1000 / calls)
            rerun = CachedBackend(FakeBackend(latency), SPEC, LLMCache(store))
            add("hit (identical rerun)" + suffix, per_call_ms(rerun, work))
            assert rerun.inner.calls == 0 and rerun.stats.hits == calls, rerun.stats
            add("objects per 1,000 entries, after the rerun" + suffix, (cache_objects(store) - before) * 1000 / calls)
            add("hit, warm index" + suffix, per_call_ms(rerun, work))
            namespace = namespace_of(rerun.fingerprint, gen_config_of(work[0][0]))
            index = rerun.cache.keys(namespace)
            add("index bytes per key" + suffix, index.nbytes / len(index))
    return {name: statistics.median(v) for name, v in out.items()}


def index_scale(store: ArtifactStore, keys: int, per_segment: int = 2048) -> dict[str, float]:
    """A namespace of ``keys`` entries in segments of ``per_segment`` (a stage's chunks): how long
    a fresh cache object takes to list it (LIST + every key column), the index's memory, and a
    batch of ~2,048 hits spread over every segment (the worst case: one row-group read per
    segment; a rerun's batch usually touches one or two)."""
    import resource

    from trustflow.models.llm.cache import cache_key, gen_config, model_fingerprint

    fingerprint = model_fingerprint(SPEC)
    config = gen_config(ChatRequest.of("x", max_tokens=96))
    namespace = namespace_of(fingerprint, config)
    writer = LLMCache(store)
    t0 = time.perf_counter()
    sample: list[str] = []
    for start in range(0, keys, per_segment):
        entries = []
        for i in range(start, min(start + per_segment, keys)):
            messages = [{"role": "user", "content": f"scale prompt {i}: a harmless benchmark question"}]
            key = cache_key(fingerprint, config, messages)
            result = ChatResult(text=f"answer {i} " * 8, finish_reason="stop", completion_tokens=40)
            entries.append((namespace, key, fingerprint, config, messages, result))
        sample.extend(e[1] for e in entries[:: max(1, keys // 2048)][:16])
        writer.put_many(entries)
    write_s = time.perf_counter() - t0
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    reader = LLMCache(store)
    t0 = time.perf_counter()
    index = reader.keys(namespace)
    list_s = time.perf_counter() - t0
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    found = reader.get_many(namespace, sample)
    batch_s = time.perf_counter() - t0
    assert len(found) == len(sample) and len(index) == keys
    return {
        "keys": keys,
        "segments": len(index.segments),
        "write s": write_s,
        "first lookup (listing) s": list_s,
        "index MB": index.nbytes / 1e6,
        "index bytes per key": index.nbytes / keys,
        "peak RSS growth MB": (rss1 - rss0) / 1024,
        "hit batch keys": len(sample),
        "hit batch ms": batch_s * 1000,
    }


def report(results: dict[str, dict[str, float]], args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for target, res in results.items():
        table = Table(
            title=f"LLM cache on {target}: {args.calls} calls, batches of {args.batch}, "
            f"fake backend {args.latency_ms:g} ms/batch, median of {args.repeat}"
        )
        table.add_column("arm")
        table.add_column("ms per call", justify="right")
        table.add_column("cache overhead ms/call", justify="right")
        table.add_column("ratio to uncached call", justify="right")
        for suffix in ("", " (0-latency backend)"):
            base = res["uncached call" + suffix]
            for arm in ("uncached call", "miss (first run)", "hit (identical rerun)", "hit, warm index"):
                ms = res[arm + suffix]
                overhead = ms - base if arm.startswith("miss") else ms
                table.add_row(
                    arm + suffix,
                    f"{ms:.3f}",
                    "-" if arm == "uncached call" else f"{overhead:.3f}",
                    f"{ms / base:.3f}" if suffix == "" else "-",  # a 0-latency call is no baseline
                )
        console.print(table)
        for suffix in ("", " (0-latency backend)"):
            print(
                f"store objects per 1,000 entries{suffix}: "
                f"{res['objects per 1,000 entries, first run' + suffix]:.1f} after the first run, "
                f"{res['objects per 1,000 entries, after the rerun' + suffix]:.1f} after the rerun; "
                f"key index {res['index bytes per key' + suffix]:.0f} bytes per key"
            )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--latency-ms", type=float, default=50.0, help="fake backend time per batch")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--s3", action="store_true", help="also against a SeaweedFS started here")
    ap.add_argument(
        "--index-keys", type=int, default=0, help="also list a namespace of this many entries (e.g. 440000)"
    )
    args = ap.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="llm-cache-bench-") as tmp_dir, OtherLoad() as load:
        tmp = Path(tmp_dir)
        from trustflow.settings import load_settings

        settings = load_settings(home=tmp / "home")
        results["local store"] = measure(
            lambda: ArtifactStore(f"file://{tmp / 'store' / uuid.uuid4().hex}", settings),
            args.calls,
            args.batch,
            args.latency_ms / 1000,
            args.repeat,
        )
        if args.s3:
            results["s3 (SeaweedFS)"] = s3_target(tmp, args)
        scale = (
            index_scale(ArtifactStore(f"file://{tmp / 'store' / 'scale'}", settings), args.index_keys)
            if args.index_keys
            else None
        )
    report(results, args)
    if scale is not None:
        print(
            "key index at scale (local store): "
            + ", ".join(f"{k} {v:,.0f}" if float(v).is_integer() else f"{k} {v:,.2f}" for k, v in scale.items())
        )
    print(load.summary())
    return 0


def s3_target(tmp: Path, args: argparse.Namespace) -> dict[str, float]:
    from trustflow.infra.local_credentials import ensure_local_credentials
    from trustflow.infra.processes import free_port_with_grpc
    from trustflow.infra.seaweedfs import SeaweedFS
    from trustflow.settings import SeaweedFSConfig, load_settings

    home = tmp / "home"
    ensure_local_credentials(home)
    ports: list[int] = []
    while len(ports) < 4:
        p = free_port_with_grpc()
        if all(abs(p - q) not in (0, 10000) for q in ports):
            ports.append(p)
    config = SeaweedFSConfig(
        s3_port=ports[0], master_port=ports[1], volume_port=ports[2], filer_port=ports[3], bucket="bench"
    )
    weed = SeaweedFS(data_dir=tmp / "seaweedfs", config=config)
    try:
        weed.up(timeout_s=120)
        settings = load_settings(home=home, store_url="s3://bench/tf", s3_endpoint_url=weed.endpoint_url)
        return measure(
            lambda: ArtifactStore(f"s3://bench/{uuid.uuid4().hex}", settings),
            args.calls,
            args.batch,
            args.latency_ms / 1000,
            args.repeat,
        )
    except BaseException:
        print(f"SeaweedFS log tail:\n{weed.process.log_tail()}", file=sys.stderr)
        raise
    finally:
        weed.down()


if __name__ == "__main__":
    sys.exit(main())
