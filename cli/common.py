"""CLI plumbing shared by every command: environment bootstrap, settings, error handling."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import typer
from rich.console import Console

from trustflow.errors import TrustflowError
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


def handle_errors(fn: F) -> F:
    """Turn expected failures into one clear line and a non-zero exit."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TrustflowError as exc:
            fail(str(exc))
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
