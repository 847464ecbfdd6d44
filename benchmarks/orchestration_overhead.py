#!/usr/bin/env python
"""Orchestration overhead: what the Prefect layer adds on top of Ray, in trustflow's pattern.

trustflow's pattern is coarse: one Prefect task per stage, and that task launches one Ray
job (many ``ray.remote`` calls, then ``ray.get``). This script measures, in one process:

1. 200 tiny Ray tasks
   * plain Ray:              ``ray.get([f.remote(i) for i in range(200)])``
   * coarse (the pattern):   a Prefect flow whose single task does exactly that
   * fine (anti-pattern):    a Prefect flow with 200 Prefect tasks, each one Ray call
     (``task.submit`` on the default thread-pool runner, so they run concurrently)
   -> per-task overhead in ms against plain Ray.
2. Stages with real work (default 3 stages, each a Ray job of ~1.5 s of CPU-bound work on
   the 2 Ray CPUs): the same Ray jobs run directly vs from a Prefect flow, one Prefect task
   per stage -> overhead in percent (goal: the Prefect layer adds < 10 %).

Two Prefect effects are made visible rather than hidden:

* server catch-up: the ephemeral server records task runs asynchronously, so a flow can
  return while the server still has work queued. After every Prefect run the script waits
  until the server lists all of that run's task runs as completed, reports that wait, and
  only then starts the next run (so no run pays for the previous one's backlog).
* flow heartbeats: Prefect 3.8's sync flow engine joins its heartbeat thread (which sleeps in
  1 s steps) when a flow run ends, adding up to ~1 s to every flow run. The "same, flow
  heartbeats ..." rows run the same flow with the opposite of what ``prefect_runtime``
  configures (it turns heartbeats off for ephemeral runs since 68d8c81; before, they were
  on at Prefect's default).

Prefect runs ephemeral in a fresh ``PREFECT_HOME`` with trustflow's Prefect settings
(``prefect_runtime``: results persisted as JSON to a temporary file store); the ephemeral
server's first start is timed separately and excluded. Ray is a local cluster with 2 CPUs.
Medians of ``--repeat`` runs; the order of the arms alternates between runs.

This is a benchmark, not a test: it always exits 0 unless something breaks.

    .venv/bin/python benchmarks/orchestration_overhead.py [--tasks 200] [--repeat 3] [--stage-repeat 5] [--no-fine]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from load_monitor import OtherLoad  # sibling module (scripts run from benchmarks/)

GOAL_PCT = 10.0
PLAIN = "plain Ray"
COARSE = "Prefect flow, 1 task -> 1 Ray job (trustflow pattern)"
FINE = "Prefect flow, {n} tasks -> 1 Ray call each (anti-pattern)"
FLOOR = "Prefect flow, 1 no-op task, no Ray (floor)"
DIRECT = "direct Ray jobs"
STAGES = "Prefect flow, 1 task per stage (trustflow pattern)"


def prepare_environment(tmp: Path) -> None:
    """Must run before prefect (or ray) is imported: Prefect reads its settings at import."""
    prefect_home = tmp / "prefect"
    os.makedirs(prefect_home, exist_ok=True)  # Prefect cannot create nested directories itself
    os.environ["PREFECT_HOME"] = str(prefect_home)
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
    os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "180"
    for name in ("PREFECT_API_URL", "PREFECT_PROFILES_PATH"):  # ephemeral mode, no profile from the user
        os.environ.pop(name, None)
    os.environ["RAY_AUTH_MODE"] = "disabled"
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")


def busy_loop(iterations: int) -> int:
    """Pure-Python CPU work (holds a core; nothing for the OS to overlap)."""
    acc = 0
    for i in range(iterations):
        acc = (acc + i * i) % 1_000_003
    return acc


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def calibrate(seconds: float) -> int:
    """Iterations of ``busy_loop`` that take about ``seconds`` on one core (median of 3)."""
    n = 200_000
    while timed(lambda n=n: busy_loop(n)) < 0.1:
        n *= 2
    rate = statistics.median(n / timed(lambda: busy_loop(n)) for _ in range(3))
    return max(1, int(rate * seconds))


@dataclass
class Arm:
    """One way of doing the work. Prefect arms return a flow's final State."""

    name: str
    call: Callable[[], Any]
    expect: int
    task_runs: int = 0  # task runs the server must record after a Prefect arm; 0: no Prefect
    run_s: list[float] = field(default_factory=list)
    catchup_s: list[float] = field(default_factory=list)


def measure(arms: list[Arm], repeat: int, wait_recorded: Callable[[Any, int], None]) -> None:
    """Run every arm ``repeat`` times, reversing the order on every other round."""
    for rep in range(repeat):
        for arm in arms if rep % 2 == 0 else arms[::-1]:
            t0 = time.perf_counter()
            out = arm.call()
            t1 = time.perf_counter()
            arm.run_s.append(t1 - t0)
            if arm.task_runs:
                if not out.is_completed():
                    raise RuntimeError(f"{arm.name}: flow run ended {out.name}")
                wait_recorded(out.state_details.flow_run_id, arm.task_runs)
                arm.catchup_s.append(time.perf_counter() - t1)
                out = out.result()
            if out != arm.expect:
                raise RuntimeError(f"{arm.name}: wrong result {out}, expected {arm.expect}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", type=int, default=200, help="tiny Ray tasks per run (default 200)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per arm for the tiny-task case (default 3)")
    ap.add_argument("--stages", type=int, default=3, help="stages in the long case (default 3)")
    ap.add_argument("--stage-seconds", type=float, default=1.5, help="wall seconds of Ray work per stage (default 1.5)")
    ap.add_argument("--ray-tasks-per-stage", type=int, default=4, help="CPU-bound Ray tasks per stage (default 4)")
    ap.add_argument("--stage-repeat", type=int, default=5, help="runs per arm for the long case (default 5)")
    ap.add_argument("--no-fine", action="store_true", help="skip the fine-grained (one Prefect task per Ray call) arm")
    args = ap.parse_args()
    for name in ("tasks", "repeat", "stages", "ray_tasks_per_stage", "stage_repeat"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.stage_seconds <= 0:
        ap.error("--stage-seconds must be > 0")

    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="trustflow-bench-orch-"))
    prepare_environment(tmp)
    try:
        return run(args, tmp, started)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(args: argparse.Namespace, tmp: Path, started: float) -> int:
    num_cpus = 2
    iterations = calibrate(args.stage_seconds * num_cpus / args.ray_tasks_per_stage)

    import prefect.settings as prefect_settings
    import ray
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        TaskRunFilter,
        TaskRunFilterState,
        TaskRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    from trustflow.infra.prefect_runtime import prefect_runtime
    from trustflow.settings import load_settings

    settings = load_settings(home=tmp / "home", store_url=f"file://{tmp / 'store'}")
    n = args.tasks

    # ---- Ray work ---------------------------------------------------------------------
    @ray.remote
    def tiny(i: int) -> int:
        return i + 1

    @ray.remote
    def busy(iters: int) -> int:
        return busy_loop(iters)

    def ray_tiny_job(count: int) -> int:
        return sum(ray.get([tiny.remote(i) for i in range(count)]))

    def ray_stage_job(stage: int) -> int:
        return sum(ray.get([busy.remote(iterations) for _ in range(args.ray_tasks_per_stage)]))

    # ---- Prefect layer (trustflow's pattern: one task launches one Ray job) -----------
    @task(name="noop", cache_policy=NO_CACHE)
    def noop_task() -> int:
        return 0

    @task(name="ray-job", cache_policy=NO_CACHE)
    def tiny_job_task(count: int) -> int:
        return ray_tiny_job(count)

    @task(name="one-ray-call", cache_policy=NO_CACHE)
    def one_call_task(i: int) -> int:
        return ray.get(tiny.remote(i))

    @task(name="stage", task_run_name="stage-{stage}", cache_policy=NO_CACHE)
    def stage_task(stage: int) -> int:
        return ray_stage_job(stage)

    @flow(name="bench-noop")
    def noop_flow() -> int:
        return noop_task()

    @flow(name="bench-coarse")
    def coarse_flow(count: int) -> int:
        return tiny_job_task(count)

    @flow(name="bench-fine")
    def fine_flow(count: int) -> int:
        futures = [one_call_task.submit(i) for i in range(count)]
        return sum(f.result() for f in futures)

    @flow(name="bench-stages")
    def stages_flow(stages: int) -> int:
        return sum(stage_task(s) for s in range(stages))

    def heartbeat_setting() -> int | None:
        return prefect_settings.get_current_settings().flows.heartbeat_frequency

    @contextlib.contextmanager
    def heartbeats_flipped() -> Iterator[None]:
        """Heartbeats off if prefect_runtime has them on, else on at Prefect's default interval."""
        flows_settings = type(prefect_settings.get_current_settings().flows)
        value = None if heartbeat_setting() is not None else flows_settings.model_fields["heartbeat_frequency"].default
        with prefect_settings.temporary_settings(updates={prefect_settings.PREFECT_FLOWS_HEARTBEAT_FREQUENCY: value}):
            yield

    def flipped(fn: Callable[[], Any]) -> Callable[[], Any]:
        def call() -> Any:
            with heartbeats_flipped():
                return fn()

        return call

    load = OtherLoad()  # entered after the warm-ups
    t0 = time.perf_counter()
    ray.init(num_cpus=num_cpus, include_dashboard=False, logging_level="WARNING")
    ray_start = time.perf_counter() - t0
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(prefect_runtime(settings))
            # warm-ups (untimed): ephemeral server start, Ray workers, every flow once
            first_start = timed(noop_flow)
            client = stack.enter_context(get_client(sync_client=True))
            completed = TaskRunFilter(state=TaskRunFilterState(type=TaskRunFilterStateType(any_=[StateType.COMPLETED])))

            def wait_recorded(flow_run_id: Any, expected: int, timeout_s: float = 300.0) -> None:
                """Block until the server lists ``expected`` completed task runs of the flow run."""
                runs = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
                deadline = time.monotonic() + timeout_s
                while True:
                    seen, offset = 0, 0
                    while True:  # the API pages at 200
                        page = client.read_task_runs(
                            flow_run_filter=runs, task_run_filter=completed, limit=200, offset=offset
                        )
                        seen += len(page)
                        if len(page) < 200:
                            break
                        offset += 200
                    if seen >= expected:
                        return
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"server recorded {seen}/{expected} task runs in {timeout_s:.0f}s")
                    time.sleep(0.05)

            for _ in range(3):
                ray_tiny_job(n)
            ray_stage_job(0)
            warm = [
                Arm("warm", lambda: coarse_flow(n, return_state=True), n * (n + 1) // 2, 1),
                Arm("warm", lambda: stages_flow(1, return_state=True), ray_stage_job(0), 1),
            ]
            if not args.no_fine:
                small = min(n, 20)
                warm.append(Arm("warm", lambda: fine_flow(small, return_state=True), small * (small + 1) // 2, small))
            measure(warm, 1, wait_recorded)
            hb = heartbeat_setting()
            hb_state = "off" if hb is None else f"every {hb} s"
            alt = "  same, flow heartbeats " + ("on (Prefect's default)" if hb is None else "off")
            load.start()
            print(
                f"ray.init {ray_start:.1f}s; first Prefect flow run (ephemeral server start) {first_start:.1f}s "
                f"(excluded); busy_loop {iterations:,} iterations per stage Ray task; "
                f"flow heartbeats under prefect_runtime: {hb_state}",
                flush=True,
            )

            # ---- case 1: tiny tasks -------------------------------------------------------
            total = n * (n + 1) // 2
            tiny_arms = [
                Arm(PLAIN, lambda: ray_tiny_job(n), total),
                Arm(COARSE, lambda: coarse_flow(n, return_state=True), total, 1),
                Arm(alt, flipped(lambda: coarse_flow(n, return_state=True)), total, 1),
            ]
            if not args.no_fine:
                tiny_arms.append(Arm(FINE.format(n=n), lambda: fine_flow(n, return_state=True), total, n))
            tiny_arms.append(Arm(FLOOR, lambda: noop_flow(return_state=True), 0, 1))
            t1 = time.perf_counter()
            measure(tiny_arms, args.repeat, wait_recorded)
            print(f"tiny-task case done in {time.perf_counter() - t1:.1f}s", flush=True)

            # ---- case 2: stages with >= 1 s of work ------------------------------------------
            stage_total = ray_stage_job(0) * args.stages

            def direct_stages() -> int:
                return sum(ray_stage_job(s) for s in range(args.stages))

            stage_arms = [
                Arm(DIRECT, direct_stages, stage_total),
                Arm(STAGES, lambda: stages_flow(args.stages, return_state=True), stage_total, args.stages),
                Arm(alt, flipped(lambda: stages_flow(args.stages, return_state=True)), stage_total, args.stages),
            ]
            t1 = time.perf_counter()
            measure(stage_arms, args.stage_repeat, wait_recorded)
            print(f"stage case done in {time.perf_counter() - t1:.1f}s", flush=True)
            load.stop()
    finally:
        ray.shutdown()

    report(args, tiny_arms, stage_arms)
    print(load.summary())
    print(f"total {time.perf_counter() - started:.0f}s (incl. Prefect/Ray start and warm-up)")
    return 0


def report(args: argparse.Namespace, tiny: list[Arm], stages: list[Arm]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=160)
    med = statistics.median
    n = args.tasks

    base = med(tiny[0].run_s)
    t1 = Table(title=f"{n} tiny Ray tasks (2 Ray CPUs), median of {args.repeat}")
    cols = (
        "path",
        "run s",
        "per task ms",
        "added s",
        "added per task ms",
        "x plain Ray",
        "server catch-up s",
        "added per task ms incl. catch-up",
    )
    for col in cols:
        t1.add_column(col, justify="left" if col == "path" else "right")
    for arm in tiny:
        m = med(arm.run_s)
        if arm.name == PLAIN:
            t1.add_row(arm.name, f"{m:.3f}", f"{m / n * 1e3:.2f}", "-", "-", "1.0", "-", "-")
            continue
        c = med(arm.catchup_s)
        if arm.name == FLOOR:
            t1.add_row(arm.name, f"{m:.3f}", "-", "-", "-", "-", f"{c:.3f}", "-")
            continue
        t1.add_row(
            arm.name,
            f"{m:.3f}",
            f"{m / n * 1e3:.2f}",
            f"{m - base:+.3f}",
            f"{(m - base) / n * 1e3:+.2f}",
            f"{m / base:.1f}",
            f"{c:.3f}",
            f"{(m + c - base) / n * 1e3:+.2f}",
        )
    console.print(t1)
    console.print(
        "server catch-up: time after the flow returned until the ephemeral server listed all its task runs as "
        "completed (the next flow run waits for that work). 'added' columns are against plain Ray.",
        highlight=False,
    )

    direct = stages[0]
    d_med, d_min = med(direct.run_s), min(direct.run_s)
    t2 = Table(
        title=(
            f"{args.stages} stages, each one Ray job of {args.ray_tasks_per_stage} CPU-bound tasks "
            f"(~{args.stage_seconds:g} s planned), median of {args.stage_repeat}; goal: Prefect adds < {GOAL_PCT:g} %"
        )
    )
    for col in ("path", "run s", "per stage s", "added s", "added %", "added % (best runs)", "catch-up s", "verdict"):
        t2.add_column(col, justify="left" if col in ("path", "verdict") else "right")
    t2.add_row(direct.name, f"{d_med:.2f}", f"{d_med / args.stages:.2f}", "-", "-", "-", "-", "")
    for arm in stages[1:]:
        m, best = med(arm.run_s), min(arm.run_s)
        pct = (m - d_med) / d_med * 100
        t2.add_row(
            arm.name,
            f"{m:.2f}",
            f"{m / args.stages:.2f}",
            f"{m - d_med:+.2f}",
            f"{pct:+.1f} %",
            f"{(best - d_min) / d_min * 100:+.1f} %",
            f"{med(arm.catchup_s):.3f}",
            "meets goal" if pct < GOAL_PCT else "ABOVE goal",
        )
    console.print(t2)
    plain = {"highlight": False, "markup": False}
    console.print("'best runs': fastest Prefect run vs fastest direct run (less sensitive to other load).", **plain)
    console.print("samples (s):", **plain)
    for case, arms in (("tiny", tiny), ("stages", stages)):
        for arm in arms:
            extra = f"  catch-up {[round(x, 3) for x in arm.catchup_s]}" if arm.catchup_s else ""
            console.print(f"  [{case}] {arm.name.strip()}: {[round(x, 3) for x in arm.run_s]}{extra}", **plain)


if __name__ == "__main__":
    sys.exit(main())
