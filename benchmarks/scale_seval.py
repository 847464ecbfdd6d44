"""S-Eval at scale (issue 22): how each stage of ``seval_evaluate`` grows with the suite.

For each size N (default 2,000 / 6,000 / 20,000 prompts; the issue's 22k → 220k → 2.2M with
``--sizes 22000,220000,2200000``) one fresh child process:

1. writes a synthetic suite of N prompts as the run's ``suite`` stage — the shared S-Eval
   sample's base and attack prompts (tasks/seval/suite.seed_suite) repeated with new ids and
   an index appended to the text, so every prompt is distinct;
2. runs the real ``seval_evaluate`` flow through Prefect (ephemeral) and a local Ray into the
   store (a file store by default, ``--s3`` for a real SeaweedFS), with two ``scripted:``
   targets (models/llm/scripted.py: deterministic replies, no model — a load generator, not
   a result) and the ``refusal`` critic;
3. reports per stage (Prefect task runs: suite, responses per target, judgements, metrics):
   wall seconds and rows/s; the time spent in ``StageWriter.commit``; the driver's peak RSS
   and the largest Ray worker RSS seen (sampled every 0.25 s); the store objects written.
   Risk tags (e5 embeddings of each unsafe verdict, ~0.1 CPU-s each) are off unless
   ``--risk-tags``: they are model compute that grows linearly by construction and would
   hide the pipeline's own costs on 2 cores. The cross-run LLM response cache is off unless
   ``--cache`` (one Parquet segment per chunk of responses; a scripted reply costs less than
   its entry).

Then a log-log fit of seconds against N per stage: the exponent (goal ≤ 1.1) and the driver
peak RSS ratio largest/smallest N (goal ≤ 1.5).

usage: benchmarks/scale_seval.py [--sizes 2000,6000,20000] [--batch-size 8] [--actors 1] [--s3]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent


SUITE_PIECE_ROWS = 100_000  # the suite is written in parts of this size: the child never holds it whole


def synthetic_suite(n: int) -> Iterator[Any]:
    """N distinct prompts in the S-Eval suite layout, cycling through the shared sample, as
    tables of at most ``SUITE_PIECE_ROWS`` rows (repeat r of a sample row gets ids ``#r``)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from trustflow.data.schemas import SEVAL_SUITE
    from trustflow.tasks.seval.suite import seed_suite

    base = seed_suite(["zh", "en"], per_dimension=10, attacks=None, attacks_per_base=None, seed=0)
    base = base.set_column(base.schema.get_field_index("source"), "source", pa.array(["scale-bench"] * base.num_rows))
    pieces: list[pa.Table] = []
    made = rows = 0
    for r in range(math.ceil(n / base.num_rows)):
        rep = base.slice(0, min(base.num_rows, n - made))
        for name, fmt in (("prompt_uid", "#"), ("prompt_id", "#"), ("base_id", "#"), ("prompt", " (")):
            suffix = f"{fmt}{r}" + (")" if fmt == " (" else "")
            i = rep.schema.get_field_index(name)
            rep = rep.set_column(i, name, pc.binary_join_element_wise(rep[name], pa.scalar(suffix), ""))
        pieces.append(rep)
        made += rep.num_rows
        rows += rep.num_rows
        if rows >= SUITE_PIECE_ROWS or made == n:
            yield pa.concat_tables(pieces).cast(SEVAL_SUITE.schema)
            pieces, rows = [], 0


def write_suite(n: int, store_url: str, run_id: str) -> None:
    """Child process: the synthetic suite of ``n`` prompts as the run's committed suite stage."""
    from trustflow import names
    from trustflow.data.schemas import SEVAL_SUITE
    from trustflow.data.store import ArtifactStore, StageRef
    from trustflow.settings import load_settings

    store = ArtifactStore(store_url, load_settings())
    writer = store.writer(StageRef(names.SEVAL_EVALUATE, run_id, names.SUITE), SEVAL_SUITE, ["prompt_uid"])
    for i, piece in enumerate(synthetic_suite(n)):
        writer.write_part(piece, f"{i:05d}")
    writer.commit({"source": "scale-bench"})


class RssSampler(threading.Thread):
    """Peak RSS of this process's Ray workers (descendants), sampled."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.worker_peak = 0
        self.driver: list[tuple[float, int]] = []  # (unix time, driver RSS bytes)
        self.stop = threading.Event()

    def driver_peak_between(self, start: float, end: float) -> int:
        return max((rss for t, rss in self.driver if start <= t <= end), default=0)

    def run(self) -> None:
        me = psutil.Process()
        while not self.stop.wait(0.25):
            self.driver.append((time.time(), me.memory_info().rss))
            try:
                for child in me.children(recursive=True):
                    try:
                        if "ray::" in " ".join(child.cmdline()[:1]) or "default_worker" in " ".join(child.cmdline()):
                            self.worker_peak = max(self.worker_peak, child.memory_info().rss)
                    except (psutil.NoSuchProcess, psutil.AccessDenied):
                        continue
            except psutil.Error:
                continue


def isolate(tmp: Path) -> None:
    """This process's Prefect home (ephemeral server) and trustflow home under ``tmp``: a
    benchmark child never touches the user's, and each size starts from an empty server."""
    (tmp / "prefect").mkdir()
    os.environ.update(
        {
            "PREFECT_HOME": str(tmp / "prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "CRITICAL",
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
            "TQDM_DISABLE": "1",
            "TRUSTFLOW_HOME": str(tmp / "home"),
        }
    )


def one_size(n: int, batch_size: int, actors: int, use_s3: bool, out: Path, tags: bool, cache: bool) -> None:
    """Child process: one run at size ``n``; writes its figures as JSON to ``out``."""
    tmp = Path(tempfile.mkdtemp(prefix=f"tf-scale-{n}-"))
    isolate(tmp)
    from trustflow import names
    from trustflow.data.store import ArtifactStore, StageRef
    from trustflow.data.store import artifact_store as store_module
    from trustflow.settings import load_settings

    commit_s: dict[str, float] = {}
    original_commit = store_module.StageWriter.commit

    def timed_commit(self: Any, attrs: dict[str, Any] | None = None) -> Any:
        t0 = time.perf_counter()
        try:
            return original_commit(self, attrs)
        finally:
            commit_s[self.ref.stage] = commit_s.get(self.ref.stage, 0.0) + time.perf_counter() - t0

    store_module.StageWriter.commit = timed_commit  # type: ignore[method-assign]

    seaweed = None
    if use_s3:
        from trustflow.infra.seaweedfs import SeaweedFS

        settings = load_settings()
        seaweed = SeaweedFS(settings).start()
        settings = load_settings()
    else:
        settings = load_settings(store_url=f"file://{tmp / 'store'}")
        os.environ["TRUSTFLOW_STORE_URL"] = settings.effective_store_url
    try:
        store = ArtifactStore(settings.effective_store_url, settings)
        run_id = f"scale-{n}"
        t0 = time.perf_counter()
        # written by a child process: building 2.2M prompts leaves the builder's freed memory
        # in its allocator, which would count as the flow's driver memory here
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--write-suite",
                str(n),
                "--store-url",
                settings.effective_store_url,
                "--run-id",
                run_id,
            ],
            check=True,
        )
        suite_s = time.perf_counter() - t0
        base_rss = psutil.Process().memory_info().rss
        sampler = RssSampler()
        sampler.start()
        from trustflow.flows.seval_evaluate import seval_evaluate
        from trustflow.infra.prefect_runtime import prefect_runtime

        targets = ["scripted:a?tokens=24&refuse=0.7", "scripted:b?tokens=24&refuse=0.4&seed=1"]
        t0 = time.perf_counter()
        with prefect_runtime(settings):
            state = seval_evaluate(
                targets=targets,
                critic="refusal",
                batch_size=batch_size,
                actors=actors,
                run_id=run_id,
                risk_tags=tags,
                cache=cache,
                return_state=True,
            )
            flow_s = time.perf_counter() - t0
            windows = task_run_windows(state.state_details.flow_run_id)
        sampler.stop.set()
        stages = {name: end - start for name, (start, end) in windows.items()}
        stage_rss = {name: sampler.driver_peak_between(start, end) / 2**20 for name, (start, end) in windows.items()}
        last_end = max((end for _, end in windows.values()), default=0.0)
        stage_rss["after the stages (report, artifacts)"] = sampler.driver_peak_between(last_end, time.time()) / 2**20
        objects = count_objects(store)
        result = {
            "n": n,
            "suite_write_s": suite_s,
            "flow_s": flow_s,
            "stages": stages,
            "stage_driver_peak_mb": stage_rss,
            "commit_s": commit_s,
            # the flow's own peak (sampled), not the process's: building the suite is not the flow
            "driver_peak_mb": max((rss for _, rss in sampler.driver), default=0) / 2**20,
            "driver_start_mb": base_rss / 2**20,
            "worker_peak_mb": sampler.worker_peak / 2**20,
            "objects": objects,
            "responses": store.manifest(StageRef(names.SEVAL_EVALUATE, run_id, names.RESPONSES)).rows,  # type: ignore[union-attr]
        }
        out.write_text(json.dumps(result))
    finally:
        if seaweed is not None:
            seaweed.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def task_run_windows(flow_run_id: Any) -> dict[str, tuple[float, float]]:
    """(start, end) unix times of each task run of the flow run, by task run name."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async def read() -> dict[str, tuple[float, float]]:
        async with get_client() as client:
            runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        return {r.name: (r.start_time.timestamp(), r.end_time.timestamp()) for r in runs if r.start_time and r.end_time}

    return asyncio.run(read())


def count_objects(store: Any) -> int:
    import pyarrow.fs as pafs

    infos = store.fs.get_file_info(pafs.FileSelector(store.path(), recursive=True, allow_not_found=True))
    return sum(1 for i in infos if i.type == pafs.FileType.File)


def fit_exponent(ns: list[int], seconds: list[float]) -> float:
    """Slope of log(seconds) on log(n), least squares."""
    xs = [math.log(n) for n in ns]
    ys = [math.log(max(s, 1e-6)) for s in seconds]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else float("nan")


def stage_label(name: str) -> str:
    for prefix, label in (
        ("responses-scripted:a", "responses (target a)"),
        ("responses-scripted:b", "responses (target b)"),
        ("judge-", "judgements"),
        ("metrics", "metrics + report"),
    ):
        if name.startswith(prefix):
            return label
    return name


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="2000,6000,20000")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--actors", type=int, default=1)
    ap.add_argument("--s3", action="store_true", help="store on a real SeaweedFS started for the run")
    ap.add_argument(
        "--risk-tags", action="store_true", help="tag unsafe verdicts (e5, ~0.1 CPU-s each: dominates on 2 cores)"
    )
    ap.add_argument("--cache", action="store_true", help="cross-run LLM response cache on (one segment per chunk)")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--write-suite", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--store-url", help=argparse.SUPPRESS)
    ap.add_argument("--run-id", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.write_suite:
        write_suite(args.write_suite, args.store_url, args.run_id)
        return 0
    if args.one:
        one_size(args.one, args.batch_size, args.actors, args.s3, args.out, args.risk_tags, args.cache)
        return 0

    from rich.console import Console
    from rich.table import Table

    sys.path.insert(0, str(HERE))
    from load_monitor import OtherLoad

    console = Console()
    sizes = [int(s) for s in args.sizes.split(",")]
    results = []
    with OtherLoad() as load:
        for n in sizes:
            out = Path(tempfile.mkstemp(suffix=".json")[1])
            cmd = [sys.executable, __file__, "--one", str(n), "--out", str(out), "--batch-size", str(args.batch_size)]
            cmd += ["--actors", str(args.actors)] + (["--s3"] if args.s3 else [])
            cmd += ["--risk-tags"] if args.risk_tags else []
            cmd += ["--cache"] if args.cache else []
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True)
            result = json.loads(out.read_text())
            result["wall_s"] = time.perf_counter() - t0
            results.append(result)
            console.print(f"N={n}: flow {result['flow_s']:.1f} s, {result['objects']} objects")

    table = Table(title=f"seval_evaluate at scale: 2 scripted targets, refusal critic, batch {args.batch_size}")
    for col in ("N", "stage", "seconds", "rows/s", "commit s", "driver peak MB"):
        table.add_column(col, justify="right" if col != "stage" else "left")
    per_stage: dict[str, list[float]] = {}
    for r in results:
        n = r["n"]
        rows = {"responses (target a)": n, "responses (target b)": n, "judgements": 2 * n, "metrics + report": 2 * n}
        commits = r["commit_s"]
        for name, secs in sorted(r["stages"].items()):
            label = stage_label(name)
            per_stage.setdefault(label, []).append(secs)
            commit = {
                "judgements": commits.get("judgements", 0.0),
                "metrics + report": sum(v for k, v in commits.items() if k not in ("responses", "judgements", "suite")),
            }.get(label, commits.get("responses", 0.0) / 2 if label.startswith("responses") else 0.0)
            peak = r["stage_driver_peak_mb"].get(name, 0.0)
            table.add_row(
                f"{n:,}",
                label,
                f"{secs:.1f}",
                f"{rows.get(label, n) / max(secs, 1e-9):,.0f}",
                f"{commit:.2f}",
                f"{peak:.0f}" if peak else "",
            )
        per_stage.setdefault("whole flow", []).append(r["flow_s"])
        table.add_row(
            f"{n:,}",
            "whole flow",
            f"{r['flow_s']:.1f}",
            f"{2 * n / r['flow_s']:,.0f}",
            "",
            f"{r['driver_peak_mb']:.0f}",
        )
    console.print(table)

    mem = Table(title="memory and store objects")
    for col in (
        "N",
        "driver at start MB",
        "driver peak MB",
        "largest worker MB",
        "store objects",
        "objects per 1k prompts",
    ):
        mem.add_column(col, justify="right")
    for r in results:
        mem.add_row(
            f"{r['n']:,}",
            f"{r['driver_start_mb']:.0f}",
            f"{r['driver_peak_mb']:.0f}",
            f"{r['worker_peak_mb']:.0f}",
            f"{r['objects']:,}",
            f"{1000 * r['objects'] / r['n']:.1f}",
        )
    console.print(mem)

    ns = [r["n"] for r in results]
    fit = Table(title=f"log-log exponent of seconds vs N ({ns[0]:,} → {ns[-1]:,}; goal ≤ 1.1)")
    fit.add_column("stage")
    fit.add_column("exponent", justify="right")
    for label, secs in per_stage.items():
        if len(secs) == len(ns):
            fit.add_row(label, f"{fit_exponent(ns, secs):.2f}")
    console.print(fit)
    ratio = results[-1]["driver_peak_mb"] / results[0]["driver_peak_mb"]
    console.print(f"driver peak RSS ratio {ns[-1]:,} / {ns[0]:,}: {ratio:.2f} (goal ≤ 1.5)")
    console.print(load.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
