"""Assemble report pages from the store: one run's page, or the combined leaderboard page.

Pages are strings so the same code serves the CLI (a file), tests (parse the string) and,
later, Prefect artifacts. Reading happens only through the store's manifests, so a stage
still being written is simply not shown, and one unreadable stage costs its section a
note instead of costing the whole page.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import tempfile
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.fs as pafs

import trustflow
from trustflow.data.store import ArtifactStore, Manifest, StageRef
from trustflow.errors import StageNotFound, StoreError
from trustflow.names import BOARD_ORDER, FLOW_TITLES
from trustflow.tasks.report.html import Section, fmt_time, note, page, public_url
from trustflow.tasks.report.sections import BOARD_SECTIONS, RunView, run_sections, stages_section

LEADERBOARD_TARGET = "leaderboard"
T = TypeVar("T")


# ---------------------------------------------------------------- finding runs


def run_dirs(store: ArtifactStore) -> list[tuple[str, str]]:
    """Every ``(flow, run_id)`` folder under ``runs/``, finished or not (for suggestions)."""

    def dirs(path: str) -> list[str]:
        try:
            infos = store.fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
        except FileNotFoundError:
            return []
        return sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory)

    return [(flow, run) for flow in dirs(store.path("runs")) for run in dirs(store.path("runs", flow))]


def all_runs(store: ArtifactStore) -> list[RunView]:
    """Every run with at least one complete stage, grouped from one listing of the store."""
    grouped: dict[tuple[str, str], dict[str, Manifest]] = defaultdict(dict)
    for ref, manifest in store.list_stages():
        grouped[(ref.flow, ref.run_id)][ref.stage] = manifest
    return [RunView(store, flow, run_id, stages) for (flow, run_id), stages in sorted(grouped.items())]


def find_run(store: ArtifactStore, target: str) -> RunView:
    """The run named ``run_id`` (in whichever flow holds it) or ``flow/run_id``."""
    flow, _, rid = target.rpartition("/")
    StageRef(flow or "any", rid, "any")  # rejects names that are not run ids, with the rule
    matches = store.find_runs(target)
    if not matches:
        known = [f"{f}/{r}" for f, r in run_dirs(store)]
        close = difflib.get_close_matches(target, known + [k.split("/", 1)[1] for k in known], n=5, cutoff=0.5)
        close += [k for k in known if target in k and k not in close][: 5 - len(close)]
        hint = f"; did you mean: {', '.join(close)}?" if close else f"; {len(known)} runs exist (see trustflow runs ls)"
        raise StageNotFound(f"no run {target!r} in {public_url(store.url)}{hint}")
    if len(matches) > 1:
        raise StageNotFound(
            f"run id {target!r} exists in flows {', '.join(f for f, _ in matches)}; use <flow>/{target}"
        )
    flow, rid = matches[0]
    stages = {ref.stage: m for ref, m in store.list_stages(flow=flow, run_id=rid)}
    return RunView(store, flow, rid, stages)


# ---------------------------------------------------------------- pages


def _guarded(what: str, render: Callable[[T], list[Section]], arg: T) -> list[Section]:
    """A store or Parquet problem in one section becomes a note there, not a failed report."""
    try:
        return render(arg)
    except (StoreError, pa.ArrowException, OSError) as exc:
        return [Section(what, note(f"could not be read: {exc}"))]


def _now() -> str:
    return fmt_time(datetime.now(UTC))


def build_run_report(store: ArtifactStore, run_id: str) -> str:
    """The page of one run: what its flow produced (tables, key figures, plots) and its manifests."""
    run = find_run(store, run_id)
    versions = sorted({m.trustflow_version for m in run.stages.values() if m.trustflow_version})
    meta: list[tuple[str, Any]] = [
        ("Flow", run.flow),
        ("Store", public_url(store.url)),
        ("Generated", _now()),
        ("Last written", fmt_time(run.written) if run.written else "no complete stage"),
        ("Written by", ", ".join(f"trustflow {v}" for v in versions) or "–"),
    ]
    sections = _guarded("Results", run_sections, run) + _guarded("Stages and manifests", stages_section, run)
    return page(f"{run.run_id}", FLOW_TITLES.get(run.flow, f"{run.flow} run"), meta, sections)


def build_leaderboard_report(store: ArtifactStore) -> str:
    """The combined page: the latest S-Eval leaderboard, detector leaderboards, every
    robustness run and every training run, one section each."""
    runs = all_runs(store)
    by_flow: dict[str, list[RunView]] = defaultdict(list)
    for run in runs:
        by_flow[run.flow].append(run)
    order = list(BOARD_ORDER) + [f for f in BOARD_SECTIONS.names() if f not in BOARD_ORDER]
    sections: list[Section] = []
    for flow in order:
        if flow in BOARD_SECTIONS:
            sections += _guarded(FLOW_TITLES.get(flow, flow), BOARD_SECTIONS.get(flow), by_flow.get(flow, []))
    counts = ", ".join(f"{flow} {len(rs)}" for flow, rs in sorted(by_flow.items())) or "none"
    meta: list[tuple[str, Any]] = [
        ("Store", public_url(store.url)),
        ("Generated", _now()),
        ("Runs", counts),
        ("Report by", f"trustflow {trustflow.__version__}"),
    ]
    return page("Leaderboards", "Every evaluation in the store, newest results first", meta, sections)


def write_report(html: str, out_path: Path) -> Path:
    """Write the page atomically: a reader (or a browser reloading) never sees half a file."""
    out_path = Path(out_path).expanduser()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".tmp", dir=out_path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(html)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a report is meant to be shared
        os.replace(tmp, out_path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return out_path
