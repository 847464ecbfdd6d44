"""``trustflow events relay``: announce object-store changes as Prefect events."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import typer

from trustflow.cli.common import bootstrap, console, handle_errors
from trustflow.errors import ConfigError

events_app = typer.Typer(no_args_is_help=True, help="Storage events: object-store changes as Prefect events.")


@events_app.callback()
def events() -> None:
    """Storage events: object-store changes as Prefect events."""


def _default_source(store_url: str, endpoint: str | None) -> str:
    if store_url.startswith("file://"):
        return "local"
    return "seaweedfs" if endpoint else "s3"


@events_app.command("relay")
@handle_errors
def relay(
    source: str | None = typer.Option(
        None,
        "--source",
        help="seaweedfs | s3 | local. Default: local for a file:// store, seaweedfs for an S3 store with an endpoint URL, else s3 (AWS).",
    ),
    bucket: str | None = typer.Option(
        None,
        "--bucket",
        help="Bucket to follow (default: the store URL's bucket, else seaweedfs.bucket). s3: only events of this bucket.",
    ),
    prefix: str = typer.Option("", "--prefix", help="Only keys under this prefix (default: the whole bucket)."),
    include: list[str] | None = typer.Option(
        None, "--include", help="Glob on the whole key ('**' spans '/'); repeatable. Default: every key under --prefix."
    ),
    exclude: list[str] | None = typer.Option(
        None, "--exclude", help="Glob of keys never announced, e.g. '**/parts/*.tmp', 'prefect-results/**'; repeatable."
    ),
    queue_url: str | None = typer.Option(
        None, "--queue-url", help="s3: the SQS queue that receives the bucket's notifications."
    ),
    filer: str | None = typer.Option(
        None, "--filer", help="seaweedfs: filer HOST:PORT (default 127.0.0.1:<seaweedfs.filer_port>)."
    ),
    root: Path | None = typer.Option(None, "--root", help="local: the directory (default: the file:// store's root)."),
    state_dir: Path | None = typer.Option(
        None,
        "--state-dir",
        help="Where the relay keeps what it announced and its position (default <home>/event-relay).",
    ),
    start: str = typer.Option(
        "beginning",
        "--start",
        help="First run only (no saved position): beginning (announce what exists/was logged) | now.",
    ),
    once: bool = typer.Option(False, "--once", help="Catch up to now, then exit (instead of following changes)."),
    api_url: str | None = typer.Option(
        None, "--api-url", help="Prefect API (default: prefect_api_url setting, else our local server)."
    ),
    transport: str = typer.Option(
        "rest", "--transport", help="rest (POST /api/events, acknowledged) | emit-event (prefect.events.emit_event)."
    ),
    batch_size: int = typer.Option(500, "--batch-size", min=1, help="Most events sent and recorded together."),
    stats_every: float = typer.Option(10.0, "--stats-every", min=0.5, help="Seconds between count lines on stderr."),
) -> None:
    """Follow the store and emit trustflow.object.created / .deleted events, each change once.

    Resource ids are s3://<bucket>/<key> (file://<root>/<key> for a local store), with
    labels trustflow.bucket/key/etag/size. State and position survive restarts: a restarted
    relay announces what changed while it was down, and nothing twice.
    """
    settings = bootstrap()
    from trustflow.data.store.location import parse_store_url
    from trustflow.infra.prefect_server import PrefectServer

    store_url = settings.effective_store_url
    name = source or _default_source(store_url, settings.s3_endpoint_url)
    if start not in ("beginning", "now"):
        raise ConfigError(f"--start {start!r}: use beginning or now")
    location = parse_store_url(store_url)
    if bucket is None and name != "local":
        bucket = (
            location.bucket if location.scheme == "s3" else (settings.seaweedfs.bucket if name == "seaweedfs" else None)
        )
    url = api_url or settings.prefect_api_url or PrefectServer.from_settings(settings).api_url
    # before Prefect is imported: its settings are read then, and without an API URL it
    # would start an ephemeral server of its own
    os.environ["PREFECT_API_URL"] = url
    _log_to_stderr()

    from trustflow.infra.event_relay.emitter import make_transport
    from trustflow.infra.event_relay.relay import KeyFilter, Relay, stop_on_signals
    from trustflow.infra.event_relay.sources import make_source, source_names
    from trustflow.infra.event_relay.state import RelayState

    if name not in source_names():
        raise ConfigError(f"--source {name!r}: use one of {', '.join(source_names())}")
    src = make_source(
        name,
        settings,
        bucket=bucket,
        prefix=prefix,
        queue_url=queue_url,
        root=root,
        filer=filer,
        once=once,
        start=start,
    )
    state = RelayState(state_dir or settings.home_dir / "event-relay", src.stream)
    sink = make_transport(transport, url)
    store_root = ""
    if location.scheme == "s3" and location.bucket == bucket:
        store_root = location.root.strip("/").partition("/")[2]  # "bucket/team/a" → "team/a"
    relay_ = Relay(
        source=src,
        state=state,
        transport=sink,
        batch_size=batch_size,
        stats_every_s=stats_every,
        store_root=store_root,
        key_filter=KeyFilter(prefix=prefix, include=tuple(include or ()), exclude=tuple(exclude or ())),
    )
    restore = stop_on_signals(relay_.stop)
    try:
        stats = relay_.run(once=once)
    finally:
        restore()
        sink.close()
        state.close()
    console.print_json(json.dumps({"stream": src.stream, **stats.as_dict(), "state": str(state.path)}))


def _log_to_stderr() -> None:
    log = logging.getLogger("trustflow.event_relay")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
