"""A rich progress bar behind trustflow's progress hooks, for interactive runs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from trustflow import progress
from trustflow.cli.common import err_console


class RichSink:
    def __init__(self, bar: Progress) -> None:
        self.bar = bar

    def start(self, label: str, total: int) -> object:
        return self.bar.add_task(label, total=total)

    def advance(self, handle: object, amount: int) -> None:
        self.bar.advance(handle, amount)  # type: ignore[arg-type]

    def finish(self, handle: object) -> None:
        self.bar.stop_task(handle)  # type: ignore[arg-type]


@contextlib.contextmanager
def rich_progress() -> Iterator[None]:
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=False,
        console=err_console,
    )  # stderr: stdout stays clean for --json
    with bar:
        progress.set_sink(RichSink(bar))
        try:
            yield
        finally:
            progress.set_sink(None)
