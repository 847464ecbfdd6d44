"""Progress reporting that tasks can call without knowing who listens.

Two listeners: the CLI installs a rich progress bar (``set_sink``), and inside a Prefect
flow or task run every ``track`` also keeps a Prefect progress artifact up to date, so the
UI shows how far a long run is (updates throttled to one per ``PREFECT_UPDATE_S`` plus the
last, so a million-item job makes a handful of API calls). Tasks report per chunk, never
per item, so hot paths stay quiet. Progress reporting never fails a job: artifact API
errors are logged at debug level and ignored.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Callable, Iterator
from typing import Protocol
from uuid import UUID

log = logging.getLogger(__name__)
PREFECT_UPDATE_S = 2.0


class ProgressSink(Protocol):
    def start(self, label: str, total: int) -> object: ...

    def advance(self, handle: object, amount: int) -> None: ...

    def finish(self, handle: object) -> None: ...


_sink: ProgressSink | None = None


def set_sink(sink: ProgressSink | None) -> None:
    global _sink
    _sink = sink


class PrefectProgress:
    """A Prefect progress artifact for one ``track`` (None outside a run or without an API)."""

    def __init__(self, label: str, total: int) -> None:
        self.total = max(1, total)
        self.done = 0
        self.last = 0.0
        self.artifact_id: UUID | None = None
        try:
            from prefect.artifacts import create_progress_artifact
            from prefect.context import FlowRunContext, TaskRunContext

            if FlowRunContext.get() is None and TaskRunContext.get() is None:
                return
            key = re.sub(r"[^a-z0-9-]+", "-", f"progress-{label}".lower()).strip("-")[:100]
            artifact_id = create_progress_artifact(progress=0.0, key=key, description=label)
            # inside async code Prefect hands back an awaitable: no progress artifact there
            self.artifact_id = artifact_id if isinstance(artifact_id, UUID) else None
        except Exception as exc:  # noqa: BLE001 - progress must never break a job
            log.debug("no Prefect progress artifact for %s: %s", label, exc)

    def advance(self, amount: int, final: bool = False) -> None:
        self.done += amount
        now = time.monotonic()
        if self.artifact_id is None or (not final and now - self.last < PREFECT_UPDATE_S):
            return
        self.last = now
        try:
            from prefect.artifacts import update_progress_artifact

            update_progress_artifact(artifact_id=self.artifact_id, progress=min(100.0, 100.0 * self.done / self.total))
        except Exception as exc:  # noqa: BLE001
            log.debug("progress artifact update failed: %s", exc)


@contextlib.contextmanager
def track(label: str, total: int) -> Iterator[Callable[[int], None]]:
    """``with track("images", n) as advance: ... advance(k)``."""
    sink = _sink
    remote = PrefectProgress(label, total)
    handle = sink.start(label, total) if sink is not None else None

    def advance(amount: int) -> None:
        if sink is not None:
            sink.advance(handle, amount)
        remote.advance(amount)

    try:
        yield advance
    finally:
        if sink is not None:
            sink.finish(handle)
        remote.advance(0, final=True)
