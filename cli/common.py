"""CLI plumbing shared by every command: environment bootstrap, settings, error handling."""

from __future__ import annotations

import contextlib
import functools
import io
import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO, TypeVar

import typer
from rich.console import Console

from trustflow.errors import StoreError, StoreUnavailable, TrustflowError
from trustflow.settings import Settings, load_settings

console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def bootstrap() -> Settings:
    """Load settings and prepare the process environment before Prefect or Ray import.

    Prefect reads ``PREFECT_HOME`` at import and cannot create nested directories itself;
    Ray must not write an auth token; local store credentials are exported if they exist.
    """
    settings = load_settings()
    home = settings.home_dir
    home.mkdir(parents=True, exist_ok=True)
    prefect_home = os.environ.setdefault("PREFECT_HOME", str(home / "prefect"))
    os.makedirs(prefect_home, exist_ok=True)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # Run logs still reach the Prefect API (UI); the terminal gets our own one-line errors
    # and progress bars instead of Prefect's per-task lines and tracebacks.
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from trustflow.infra.local_credentials import ensure_local_credentials

    # only for the managed local SeaweedFS: never shadow a profile or role meant for AWS
    managed_endpoint = f"http://127.0.0.1:{settings.seaweedfs.s3_port}"
    if settings.s3_endpoint_url == managed_endpoint and ensure_local_credentials(home, create=False):
        settings = load_settings()
    return settings


def fail(message: str, code: int = 1) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


_JSON_OUT: list[TextIO] = []  # where emit_json writes while stdout is reserved


def _fileno(stream: Any) -> int | None:
    try:
        return int(stream.fileno())
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None


@contextlib.contextmanager
def stdout_reserved_for_json() -> Iterator[None]:
    """While a ``--json`` command runs, stdout carries the JSON document and nothing else.

    Libraries log to stdout behind our back: DeepSpeed's logger (imported by transformers)
    has a ``StreamHandler(sys.stdout)`` and prints "Setting accelerator to CPU" on import, Ray
    forwards worker output, C libraries print. So file descriptor 1 is pointed at stderr for
    the whole command (whatever holds ``sys.stdout`` or fd 1, imported before or after, now
    writes to stderr) and :func:`emit_json` writes to a duplicate of the real stdout. Where
    stdout is not a file (a test runner's buffer) the same is done at the Python level:
    ``sys.stdout`` and logging handlers bound to it are redirected to stderr.
    """
    sys.stdout.flush()
    out_fd, err_fd = _fileno(sys.stdout), _fileno(sys.stderr)
    if out_fd is None or err_fd is None:
        real = sys.stdout
        moved = [
            h
            for h in _all_handlers()
            if isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) in (real, sys.__stdout__)
        ]
        for h in moved:
            h.setStream(sys.stderr)
        _JSON_OUT.append(real)
        try:
            with contextlib.redirect_stdout(sys.stderr):
                yield
        finally:
            _JSON_OUT.pop()
            for h in moved:
                h.setStream(real)
        return
    saved = os.dup(out_fd)
    real_out = os.fdopen(saved, "w", encoding="utf-8")
    os.dup2(err_fd, out_fd)
    _JSON_OUT.append(real_out)
    try:
        yield
    finally:
        _JSON_OUT.pop()
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        real_out.flush()
        os.dup2(saved, out_fd)
        real_out.close()


def _all_handlers() -> list[logging.Handler]:
    loggers = [logging.getLogger()] + [
        lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    return [h for lg in loggers for h in lg.handlers]


def emit_json(data: Any, **dumps_options: Any) -> None:
    """Print the one JSON document of a ``--json`` command on the real stdout."""
    out = _JSON_OUT[-1] if _JSON_OUT else sys.stdout
    out.write(json.dumps(data, **dumps_options) + "\n")
    out.flush()


RUN_LOG = "logs/trustflow.log"


def log_failure(exc: BaseException) -> Path | None:
    """Append ``exc``'s full traceback (causes included) to ``<home>/logs/trustflow.log``.

    A store failure raised deep inside Ray or Prefect carries a long chained traceback; the
    terminal gets one line, this file keeps the rest. None if the log cannot be written.
    """
    try:
        path = load_settings().home_dir / RUN_LOG
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as log:
            log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(sys.argv[1:3])}: {type(exc).__name__}\n")
            log.write("".join(traceback.format_exception(exc)))
        return path
    except Exception:  # noqa: BLE001 - never let logging hide the error itself
        return None


def handle_errors(fn: F) -> F:
    """Turn expected failures into one clear line and a non-zero exit; a command called with
    ``as_json=True`` (its ``--json`` option) runs with stdout reserved for its JSON."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            if kwargs.get("as_json"):
                with stdout_reserved_for_json():
                    return fn(*args, **kwargs)
            return fn(*args, **kwargs)
        except TrustflowError as exc:
            logged = log_failure(exc) if isinstance(exc, StoreError) else None
            if isinstance(exc, StoreUnavailable) and logged is not None:
                fail(f"{exc} (details: {logged})")
            fail(str(exc), code=int(getattr(exc, "exit_code", 1)))
        except KeyboardInterrupt:
            err_console.print("interrupted")
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


@contextlib.contextmanager
def flow_session(settings: Settings, progress: bool = True) -> Iterator[None]:
    """Everything a command needs around a flow call: the Prefect runtime (ephemeral or the
    configured server), live progress bars on stderr, and Ray shut down afterwards even on
    failure (so a crashed run leaves no local Ray processes behind)."""
    from trustflow.cli.progress_bar import rich_progress
    from trustflow.infra.prefect_runtime import prefect_runtime
    from trustflow.infra.ray_runtime import shutdown_ray

    try:
        with prefect_runtime(settings), rich_progress() if progress else contextlib.nullcontext():
            yield
    finally:
        shutdown_ray()
