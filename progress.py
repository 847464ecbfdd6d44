"""Progress reporting that tasks can call without knowing who listens.

The CLI installs a rich progress bar; under a Prefect worker nothing is installed and the
calls cost nothing. Tasks report per chunk, never per item, so hot paths stay quiet.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator, Protocol


class ProgressSink(Protocol):
    def start(self, label: str, total: int) -> object: ...

    def advance(self, handle: object, amount: int) -> None: ...

    def finish(self, handle: object) -> None: ...


_sink: ProgressSink | None = None


def set_sink(sink: ProgressSink | None) -> None:
    global _sink
    _sink = sink


@contextlib.contextmanager
def track(label: str, total: int) -> Iterator[Callable[[int], None]]:
    """``with track("images", n) as advance: ... advance(k)``."""
    sink = _sink
    if sink is None:
        yield lambda amount: None
        return
    handle = sink.start(label, total)
    try:
        yield lambda amount: sink.advance(handle, amount)
    finally:
        sink.finish(handle)
