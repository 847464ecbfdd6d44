#!/usr/bin/env python
"""Artifact store throughput: trustflow's ArtifactStore vs raw pyarrow.parquet on the same target.

Builds a prompt-like table (default 1,000,000 rows), then for each target

* local  - a ``file://`` store in a temporary directory
* s3     - a real SeaweedFS (``weed mini``) started here on free ports, stopped at the end

measures, ``--repeat`` times (median reported):

* trustflow write: ``StageWriter.write_part`` for each ~250k-row part, then ``commit``
* trustflow read:  ``ArtifactStore.read_table`` of the committed stage
* raw write (baseline): ``pyarrow.parquet.write_table`` of the same parts (zstd), same
  pyarrow filesystem object (``store.fs``), same part layout
* raw read (baseline):  ``pyarrow.parquet.read_table`` of that directory

and prints rows/s plus the ratio trustflow/raw (throughput; goal >= 0.8). Every timed step
starts after ``os.sync()`` (outside the timing); all writes run before all reads, and which
method goes first alternates between rounds. Other load on the machine is sampled and
reported, since it moves these figures more than anything measured here.

This is a benchmark, not a test: it always exits 0 unless something breaks.

    .venv/bin/python benchmarks/store_throughput.py [--rows N] [--part-rows N] [--repeat R] [--skip-s3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from load_monitor import OtherLoad  # sibling module (scripts run from benchmarks/)

from trustflow.data.schemas import VersionedSchema
from trustflow.data.store import ArtifactStore, StageRef
from trustflow.settings import SeaweedFSConfig, load_settings

GOAL_RATIO = 0.8
KEY_COLUMNS = ["prompt_id"]

# Defined here on purpose: benchmarks must not add schemas to the product.
BENCH_PROMPTS = VersionedSchema(
    "bench_prompts",
    1,
    pa.schema(
        [
            pa.field("prompt_id", pa.string(), nullable=False),  # 32 hex chars
            pa.field("lang", pa.string(), nullable=False),  # en | zh
            pa.field("risk_type", pa.string(), nullable=False),
            pa.field("prompt", pa.string(), nullable=False),  # ~150 characters
            pa.field("attack", pa.string()),  # null for about half the rows
            pa.field("line_no", pa.int32(), nullable=False),
        ]
    ),
)

RISK_TYPES = [
    "crimes_and_illegal_activities", "cybersecurity", "data_privacy", "ethics_and_morality",
    "physical_and_mental_health", "hate_speech", "extremism", "inappropriate_suggestions",
    "insult", "rumors", "sexual_content", "violence",
]  # fmt: skip
ATTACKS = [
    "instruction_jailbreak", "goal_hijacking", "role_play", "reverse_exposure", "prompt_leaking",
    "unsafe_instruction", "code_injection", "multilingual", "encryption", "distraction",
    "few_shot", "chain_of_thought",
]  # fmt: skip


# ---- data -------------------------------------------------------------------------------
def _phrases(rng: np.random.Generator, count: int = 30_000) -> tuple[list[str], list[str]]:
    """Pseudo-English phrases (2-4 words made of syllables) and pseudo-Chinese phrases (CJK runs)."""
    onsets = list("bcdfghjklmnprstvwz") + ["ch", "sh", "th", "tr", "pl", "gr", "st"]
    vowels = ["a", "e", "i", "o", "u", "ai", "ea", "ou", "io"]
    codas = ["", "", "n", "r", "s", "t", "l", "nd", "ck", "ng"]
    words: set[str] = set()
    while len(words) < 4000:
        n = int(rng.integers(1, 4))
        words.add("".join(rng.choice(onsets) + rng.choice(vowels) + rng.choice(codas) for _ in range(n)))
    vocab = sorted(words)
    picks = rng.integers(0, len(vocab), (count, 4))
    sizes = rng.integers(2, 5, count)
    en = [" ".join(vocab[j] for j in picks[i, : sizes[i]]) for i in range(count)]
    cjk = rng.integers(0x4E00, 0x9FA5, (count, 30))
    lens = rng.integers(12, 31, count)
    zh = ["".join(map(chr, cjk[i, : lens[i]])) for i in range(count)]
    return en, zh


def make_table(rows: int, seed: int = 20261124) -> pa.Table:
    """A prompt-like table: random ids, a few low-cardinality columns, varied ~150-char text."""
    rng = np.random.default_rng(seed)
    hexes = rng.bytes(16 * rows).hex()
    prompt_id = pa.array([hexes[i * 32 : (i + 1) * 32] for i in range(rows)], pa.string())

    is_zh = rng.random(rows) < 0.5
    lang = pa.array(np.where(is_zh, "zh", "en"), pa.string())
    risk_type = pa.array(RISK_TYPES).take(pa.array(rng.integers(0, len(RISK_TYPES), rows)))
    attack_idx = rng.integers(0, len(ATTACKS), rows)
    attack = pa.array(ATTACKS).take(pa.array(attack_idx, mask=rng.random(rows) < 0.5))

    # Each prompt joins 4-8 random phrases (English with spaces, Chinese without), drawn from
    # 30k phrases per language: about 150 characters, no two rows alike.
    en, zh = _phrases(rng)
    vocab = pa.array(en + zh, pa.string())
    max_phrases = 8
    n_phrases = np.where(is_zh, rng.integers(5, 9, rows), rng.integers(4, 8, rows))
    offset = np.where(is_zh, len(en), 0)
    cols = []
    for k in range(max_phrases):
        idx = rng.integers(0, len(en), rows) + offset
        cols.append(vocab.take(pa.array(idx, mask=n_phrases <= k)))
    sep = pa.array(np.where(is_zh, "，", " "), pa.string())
    prompt = pc.binary_join_element_wise(*cols, sep, null_handling="skip")
    prompt = pc.utf8_slice_codeunits(prompt, 0, 240)

    line_no = pa.array(np.arange(1, rows + 1, dtype=np.int32))
    return pa.Table.from_arrays([prompt_id, lang, risk_type, prompt, attack, line_no], schema=BENCH_PROMPTS.schema)


def split_parts(table: pa.Table, part_rows: int) -> list[pa.Table]:
    return [table.slice(i, part_rows) for i in range(0, table.num_rows, part_rows)]


# ---- load on the machine -----------------------------------------------------------
# ---- measurements -----------------------------------------------------------------------
@dataclass
class Samples:
    write_s: list[float] = field(default_factory=list)
    read_s: list[float] = field(default_factory=list)
    commit_s: list[float] = field(default_factory=list)  # trustflow only (part of write_s)
    bytes_written: int = 0

    @staticmethod
    def med(values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")


def _timed(fn: Callable[[], object]) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _expect_rows(got: int, expected: int) -> None:
    if got != expected:
        raise RuntimeError(f"read back {got} rows, expected {expected}")


Round = tuple[Callable[[], None], Callable[[], None]]  # (write, read)


def raw_round(store: ArtifactStore, parts: list[pa.Table], rows: int, samples: Samples) -> Round:
    """Baseline: plain pq.write_table per part + pq.read_table of the directory, same fs."""
    fs = store.fs
    base = store.path("raw", uuid.uuid4().hex)
    local = store.location.scheme == "file"

    def write() -> None:
        if local:
            fs.create_dir(base, recursive=True)
        for i, part in enumerate(parts):
            pq.write_table(part, f"{base}/part-{i:05d}.parquet", filesystem=fs, compression="zstd")

    def read() -> pa.Table:
        return pq.read_table(base, filesystem=fs)

    def run_write() -> None:
        dt, _ = _timed(write)
        samples.write_s.append(dt)
        infos = fs.get_file_info(pafs.FileSelector(base))
        samples.bytes_written = sum(i.size or 0 for i in infos)

    def run_read() -> None:
        dt, table = _timed(read)
        _expect_rows(table.num_rows, rows)
        samples.read_s.append(dt)

    return run_write, run_read


def trustflow_round(store: ArtifactStore, parts: list[pa.Table], rows: int, samples: Samples) -> Round:
    """trustflow: StageWriter.write_part per part, commit, then ArtifactStore.read_table."""
    ref = StageRef("bench", uuid.uuid4().hex, "prompts")

    def run_write() -> None:
        t0 = time.perf_counter()
        writer = store.writer(ref, BENCH_PROMPTS, KEY_COLUMNS)
        for i, part in enumerate(parts):
            writer.write_part(part, part_id=f"{i:05d}")
        t1 = time.perf_counter()
        manifest = writer.commit()
        t2 = time.perf_counter()
        _expect_rows(manifest.rows, rows)
        samples.write_s.append(t2 - t0)
        samples.commit_s.append(t2 - t1)
        samples.bytes_written = sum(p.bytes for p in manifest.parts)

    def run_read() -> None:
        dt, table = _timed(lambda: store.read_table(ref))
        _expect_rows(table.num_rows, rows)
        samples.read_s.append(dt)

    return run_write, run_read


METHODS = {"raw": raw_round, "trustflow": trustflow_round}


def settle() -> None:
    """Flush dirty pages (ours and SeaweedFS's) so write-back of the previous round does not
    compete with the next timed step for the CPU; done outside every timing."""
    os.sync()
    time.sleep(0.3)


def measure_target(store: ArtifactStore, parts: list[pa.Table], rows: int, repeat: int) -> dict[str, Samples]:
    results = {"raw": Samples(), "trustflow": Samples()}
    discard = {"raw": Samples(), "trustflow": Samples()}
    # round 0 is an untimed full-size warm-up, run first in the write phase and first in the
    # read phase: the first big read after a burst of writes pays for fresh memory (page
    # faults) whichever method it is, and S3 connections and thread pools warm up too
    rounds = [
        {name: make(store, parts, rows, (discard if rep == 0 else results)[name]) for name, make in METHODS.items()}
        for rep in range(repeat + 1)
    ]
    # all writes, then all reads; the order of the two methods alternates between rounds
    for step in (0, 1):
        for rep, pair in enumerate(rounds):
            for name in ("raw", "trustflow") if rep % 2 == 1 else ("trustflow", "raw"):
                settle()
                pair[name][step]()
    return results


# ---- targets ----------------------------------------------------------------------------
def local_target(tmp: Path, parts: list[pa.Table], rows: int, repeat: int) -> dict[str, Samples]:
    root = tmp / "local-store"
    settings = load_settings(home=tmp / "home", store_url=f"file://{root}")
    store = ArtifactStore(settings.effective_store_url, settings)
    return measure_target(store, parts, rows, repeat)


def s3_target(tmp: Path, parts: list[pa.Table], rows: int, repeat: int) -> dict[str, Samples]:
    from trustflow.infra.local_credentials import ensure_local_credentials
    from trustflow.infra.processes import free_port_with_grpc
    from trustflow.infra.seaweedfs import SeaweedFS

    home = tmp / "home"
    ensure_local_credentials(home)  # exports AWS_* (an existing pair in the environment wins)
    ports: list[int] = []
    while len(ports) < 4:
        p = free_port_with_grpc()
        if all(abs(p - q) not in (0, 10000) for q in ports):
            ports.append(p)
    s3_port, master_port, volume_port, filer_port = ports
    config = SeaweedFSConfig(
        s3_port=s3_port, master_port=master_port, volume_port=volume_port, filer_port=filer_port, bucket="bench"
    )
    weed = SeaweedFS(data_dir=tmp / "seaweedfs", config=config)
    try:
        t0 = time.perf_counter()
        weed.up(timeout_s=120)
        print(f"SeaweedFS up at {weed.endpoint_url} in {time.perf_counter() - t0:.1f}s", flush=True)
        settings = load_settings(home=home, store_url="s3://bench/tf", s3_endpoint_url=weed.endpoint_url)
        store = ArtifactStore(settings.effective_store_url, settings)
        try:
            return measure_target(store, parts, rows, repeat)
        finally:
            del store  # drop the S3 filesystem before the server goes away
    except BaseException:
        print(f"SeaweedFS log tail ({weed.process.log_file}):\n{weed.process.log_tail()}", file=sys.stderr)
        raise
    finally:
        weed.down()


# ---- report -----------------------------------------------------------------------------
def report(all_results: dict[str, dict[str, Samples]], rows: int, n_parts: int, repeat: int) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=140)
    med = Samples.med
    detail = Table(title=f"Store throughput: {rows:,} rows in {n_parts} parts, zstd, median of {repeat}")
    cols = ("target", "method", "write s", "write rows/s", "(of which commit s)", "read s", "read rows/s", "parquet MB")
    for col in cols:
        detail.add_column(col, justify="left" if col in ("target", "method") else "right")
    ratios = Table(title=f"trustflow / raw throughput (goal >= {GOAL_RATIO})")
    for col in ("target", "write ratio", "write ratio w/o commit", "read ratio", "verdict"):
        ratios.add_column(col, justify="left" if col in ("target", "verdict") else "right")

    for target, res in all_results.items():
        for method in ("raw", "trustflow"):
            s = res[method]
            w, r = med(s.write_s), med(s.read_s)
            detail.add_row(
                target,
                method,
                f"{w:.2f}",
                f"{rows / w:,.0f}",
                f"{med(s.commit_s):.2f}" if s.commit_s else "-",
                f"{r:.2f}",
                f"{rows / r:,.0f}",
                f"{s.bytes_written / 1e6:.1f}",
            )
        raw, tf = res["raw"], res["trustflow"]
        wr = med(raw.write_s) / med(tf.write_s)
        pr = med(raw.write_s) / med([w - c for w, c in zip(tf.write_s, tf.commit_s, strict=True)])
        rr = med(raw.read_s) / med(tf.read_s)
        ok = wr >= GOAL_RATIO and rr >= GOAL_RATIO
        ratios.add_row(target, f"{wr:.2f}", f"{pr:.2f}", f"{rr:.2f}", "meets goal" if ok else "BELOW goal")
    console.print(detail)
    console.print(ratios)
    console.print(
        "write = every part + commit() for trustflow, every part for raw; 'w/o commit' counts write_part only. "
        "ratio = raw seconds / trustflow seconds (> 1: trustflow faster).",
        highlight=False,
    )
    console.print("samples (s):", highlight=False, markup=False)
    for target, res in all_results.items():
        for method, s in res.items():
            console.print(
                f"  {target:15s} {method:9s} write {[round(x, 2) for x in s.write_s]}"
                + (f" commit {[round(x, 2) for x in s.commit_s]}" if s.commit_s else "")
                + f" read {[round(x, 2) for x in s.read_s]}",
                highlight=False,
                markup=False,
            )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--part-rows", type=int, default=250_000, help="rows per part (default 250000)")
    ap.add_argument("--repeat", type=int, default=3, help="rounds per target; the median is reported (default 3)")
    ap.add_argument("--skip-s3", action="store_true", help="local store only (no SeaweedFS)")
    args = ap.parse_args()
    if args.rows < 1 or args.part_rows < 1 or args.repeat < 1:
        ap.error("--rows, --part-rows and --repeat must be >= 1")

    started = time.perf_counter()
    print(f"pyarrow {pa.__version__}, {os.cpu_count()} CPUs, arrow threads {pa.cpu_count()}", flush=True)
    dt, table = _timed(lambda: make_table(args.rows))
    parts = split_parts(table, args.part_rows)
    lengths = pc.utf8_length(table["prompt"])
    print(
        f"generated {table.num_rows:,} rows ({table.nbytes / 1e6:.0f} MB in memory, prompt length "
        f"mean {pc.mean(lengths).as_py():.0f} chars) in {dt:.1f}s; {len(parts)} parts",
        flush=True,
    )

    tmp = Path(tempfile.mkdtemp(prefix="trustflow-bench-store-"))
    results: dict[str, dict[str, Samples]] = {}
    load = OtherLoad()
    try:
        with load:
            t0 = time.perf_counter()
            results["local"] = local_target(tmp, parts, args.rows, args.repeat)
            print(f"local target done in {time.perf_counter() - t0:.1f}s", flush=True)
            if not args.skip_s3:
                t0 = time.perf_counter()
                results["s3 (SeaweedFS)"] = s3_target(tmp, parts, args.rows, args.repeat)
                print(f"s3 target done in {time.perf_counter() - t0:.1f}s (incl. SeaweedFS start/stop)", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    report(results, args.rows, len(parts), args.repeat)
    print(load.summary())
    print(f"total {time.perf_counter() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
