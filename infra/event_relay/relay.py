"""The relay loop: source → key filter → state dedup → emit → record → ack.

One thread does it all, one batch at a time, so the order "emit, then record, then ack"
holds for every batch. SIGINT/SIGTERM set a stop flag: the batch in hand is finished, the
source is closed, and the process exits with everything it announced recorded. While the
Prefect API refuses a batch the loop retries it with capped backoff (``--once`` fails
instead). Logging is one line of counts every ``stats_every_s`` seconds, never per object.
"""

from __future__ import annotations

import logging
import re
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache

from trustflow.errors import ServiceError
from trustflow.infra.event_relay.emitter import Transport, emit_and_record
from trustflow.infra.event_relay.events import Batch
from trustflow.infra.event_relay.sources import ObjectSource
from trustflow.infra.event_relay.state import RelayState

logger = logging.getLogger("trustflow.event_relay")


@lru_cache(maxsize=256)
def glob_regex(pattern: str) -> re.Pattern[str]:
    """A key glob as a regex: ``**`` spans ``/``, ``*`` and ``?`` stay inside one segment.

    ``**/`` also matches nothing, so ``**/parts/*.tmp`` matches ``parts/x.tmp`` at the top.
    """
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


@dataclass(frozen=True)
class KeyFilter:
    """Which keys are announced: under ``prefix``, matching an include glob (default: all),
    matching no exclude glob. Globs match the whole key (not the part after the prefix)."""

    prefix: str = ""
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def __call__(self, key: str) -> bool:
        if not key.startswith(self.prefix):
            return False
        if self.include and not any(glob_regex(p).match(key) for p in self.include):
            return False
        return not any(glob_regex(p).match(key) for p in self.exclude)


@dataclass
class RelayStats:
    seen: int = 0
    filtered: int = 0
    created: int = 0
    deleted: int = 0
    unchanged: int = 0
    batches: int = 0
    send_retries: int = 0
    seconds: float = 0.0
    started: float = field(default_factory=time.monotonic, repr=False)

    def as_dict(self) -> dict[str, float | int]:
        data = asdict(self)
        data.pop("started")
        data["seconds"] = round(time.monotonic() - self.started, 3)
        return data


@dataclass
class Relay:
    source: ObjectSource
    state: RelayState
    transport: Transport
    key_filter: KeyFilter = field(default_factory=KeyFilter)
    batch_size: int = 500
    store_root: str = ""  # the store's prefix inside the bucket: events label keys relative to it (trustflow.path)
    poll_timeout_s: float = 0.5
    stats_every_s: float = 10.0
    stop: threading.Event = field(default_factory=threading.Event)
    stats: RelayStats = field(default_factory=RelayStats)

    def run(self, once: bool = False) -> RelayStats:
        """Relay until stopped (or, with ``once``, until the source has caught up)."""
        self.source.open(self.state)
        last_log = time.monotonic()
        logged = asdict(self.stats)
        try:
            while not self.stop.is_set():
                batch = self.source.poll(self.batch_size, self.poll_timeout_s)
                if batch:
                    self._handle(batch, once)
                now = time.monotonic()
                if now - last_log >= self.stats_every_s:
                    if asdict(self.stats) != logged:  # quiet while idle
                        self._log_counts(logged, now - last_log)
                    logged, last_log = asdict(self.stats), now
                if once and self.source.caught_up():  # the batch in hand was handled above
                    break
        finally:
            self.source.close()
            self.stats.seconds = time.monotonic() - self.stats.started
        return self.stats

    def _handle(self, batch: Batch, once: bool) -> None:
        self.stats.seen += len(batch.events)
        kept = [e for e in batch.events if self.key_filter(e.key)]
        self.stats.filtered += len(batch.events) - len(kept)
        batch = Batch(events=kept, position=batch.position, acks=batch.acks)
        delay = 0.5
        while True:
            try:
                counts = emit_and_record(
                    self.state,
                    self.transport,
                    batch,
                    self.source.stream,
                    self.source.name,
                    self.source.ordered,
                    self.store_root,
                )
                break
            except ServiceError as exc:
                if once or self.stop.is_set():
                    raise
                self.stats.send_retries += 1
                if self.stats.send_retries in (1, 10) or self.stats.send_retries % 100 == 0:
                    logger.warning("%s; retrying the batch in %.1fs (retry %d)", exc, delay, self.stats.send_retries)
                if self.stop.wait(delay):
                    raise
                delay = min(delay * 2, 30.0)
        self.source.ack(batch.acks)
        self.stats.batches += 1
        self.stats.created += counts.created
        self.stats.deleted += counts.deleted
        self.stats.unchanged += counts.unchanged

    def _log_counts(self, before: dict[str, float | int], elapsed: float) -> None:
        s = self.stats
        emitted = s.created + s.deleted - int(before["created"]) - int(before["deleted"])
        logger.info(
            "relay %s: %.0f events/s; totals created=%d deleted=%d unchanged=%d filtered=%d retries=%d",
            self.source.stream,
            emitted / max(elapsed, 1e-9),
            s.created,
            s.deleted,
            s.unchanged,
            s.filtered,
            s.send_retries,
        )


def stop_on_signals(
    stop: threading.Event, signals: Sequence[int] = (signal.SIGINT, signal.SIGTERM)
) -> Callable[[], None]:
    """Make SIGINT/SIGTERM set ``stop`` (main thread only); returns a function restoring the old handlers."""
    previous = {sig: signal.getsignal(sig) for sig in signals}

    def handler(signum: int, _frame: object) -> None:
        stop.set()

    for sig in signals:
        signal.signal(sig, handler)

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore
