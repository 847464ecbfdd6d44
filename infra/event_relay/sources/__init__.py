"""Where object changes come from: one small interface, one file per store kind.

A source is one module here with one decorator (``@SOURCES.register("<name>")``, its options
model as the class's ``Options``); the registry imports this package's modules on its first
lookup. It is built from its validated options and the settings (``make_source``), then
opened with the relay state (its saved position, and for the local directory
the known keys it compares a scan against), then polled for ``Batch`` es. ``ack`` confirms
a batch after it was emitted and recorded; ``caught_up`` says the backlog present at open
has been delivered (how ``--once`` knows to stop).
"""

from __future__ import annotations

import queue
import time
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Literal, TypeVar

from trustflow.infra.event_relay.events import Batch
from trustflow.infra.event_relay.state import RelayState
from trustflow.registry import Options, Registry
from trustflow.settings import Settings

StartAt = Literal["beginning", "now"]
T = TypeVar("T")


class SourceOptions(Options):
    """What every source takes; a source's own ``Options`` add what only it needs.

    ``bucket``: the bucket the events are about (default: the store's); ``prefix``: only keys
    under it; ``once``: stop when caught up; ``start``: where a first run (no saved position)
    begins: ``beginning`` (announce what exists or was logged) or ``now``."""

    bucket: str | None = None
    prefix: str = ""
    once: bool = False
    start: StartAt = "beginning"


class ObjectSource(ABC):
    """A stream of object changes with a resumable position."""

    name: ClassVar[str]
    Options: ClassVar[type[SourceOptions]] = SourceOptions
    #: whether ``ObjectEvent.seq`` orders changes of a key (else it is only a fingerprint)
    ordered: ClassVar[bool] = True

    @abstractmethod
    def __init__(self, options: SourceOptions, settings: Settings) -> None:
        """Built by ``make_source`` from the source's validated ``Options`` and the settings."""

    @property
    @abstractmethod
    def stream(self) -> str:
        """Identity of this stream in the state (a different value means a fresh state)."""

    @property
    @abstractmethod
    def bucket(self) -> str:
        """The bucket (or local root) the events are about."""

    @abstractmethod
    def open(self, state: RelayState) -> None:
        """Start reading from ``state.position()`` (or the configured start when None)."""

    @abstractmethod
    def poll(self, max_items: int, timeout_s: float) -> Batch:
        """Up to ``max_items`` events: waits at most ``timeout_s`` for the first one."""

    @abstractmethod
    def caught_up(self) -> bool:
        """True once everything that existed or was logged before ``open`` was delivered."""

    def ack(self, acks: list[Any]) -> None:
        """Confirm handles of a batch that was emitted and recorded (default: nothing to do)."""
        return None

    @abstractmethod
    def close(self) -> None: ...


SOURCES: Registry[type[ObjectSource]] = Registry("event source", plugins=__name__)


def make_source(name: str, settings: Settings, **options: Any) -> ObjectSource:
    """The source ``name`` built from ``options`` (``None`` values mean "not given") and the
    settings; an option the source does not take is a ``ConfigError`` naming it."""
    entry, validated = SOURCES.resolve(name, **{k: v for k, v in options.items() if v is not None})
    assert isinstance(validated, SourceOptions)  # every source's Options extends SourceOptions
    return entry.obj(validated, settings)


def source_names() -> list[str]:
    return SOURCES.names()


def drain(q: queue.Queue[T], max_items: int, timeout_s: float) -> list[T]:
    """Block up to ``timeout_s`` for one item, then take what is already there (≤ max_items).

    Light traffic leaves in small batches right away; a backlog leaves in full batches.
    """
    items: list[T] = []
    try:
        items.append(q.get(timeout=max(timeout_s, 0.0)) if timeout_s > 0 else q.get_nowait())
    except queue.Empty:
        return items
    deadline = time.monotonic() + 0.005  # let a burst that is being parsed right now join
    while len(items) < max_items:
        try:
            items.append(q.get_nowait())
        except queue.Empty:
            if time.monotonic() >= deadline:
                break
            time.sleep(0.001)
    return items
