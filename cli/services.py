"""``trustflow storage`` and ``trustflow server``: start, stop and inspect local services."""

from __future__ import annotations

import json

import typer

from trustflow.cli.common import bootstrap, console, handle_errors

storage_app = typer.Typer(no_args_is_help=True, help="The local SeaweedFS S3 server (127.0.0.1 only).")
server_app = typer.Typer(no_args_is_help=True, help="A local Prefect server (127.0.0.1 only).")


@storage_app.command("up")
@handle_errors
def storage_up() -> None:
    """Start SeaweedFS, create the bucket, wait until S3 answers; print how to use it."""
    settings = bootstrap()
    from trustflow.infra.local_credentials import ensure_local_credentials
    from trustflow.infra.seaweedfs import SeaweedFS

    ensure_local_credentials(settings.home_dir, create=True)
    sw = SeaweedFS.from_settings(settings)
    status = sw.up()
    console.print_json(json.dumps(status))
    console.print(
        f"use it: export TRUSTFLOW_STORE_URL=s3://{sw.config.bucket} TRUSTFLOW_S3_ENDPOINT_URL={sw.endpoint_url}",
        highlight=False,
    )


@storage_app.command("down")
@handle_errors
def storage_down() -> None:
    """Stop the SeaweedFS this project started (and nothing else)."""
    from trustflow.infra.seaweedfs import SeaweedFS

    stopped = SeaweedFS.from_settings(bootstrap()).down()
    console.print("stopped" if stopped else "not running")


@storage_app.command("status")
@handle_errors
def storage_status() -> None:
    """Is our SeaweedFS running, and where."""
    from trustflow.infra.seaweedfs import SeaweedFS

    console.print_json(json.dumps(SeaweedFS.from_settings(bootstrap()).status()))


@server_app.command("up")
@handle_errors
def server_up() -> None:
    """Start a Prefect server on 127.0.0.1 and wait until it is healthy."""
    from trustflow.infra.prefect_server import PrefectServer

    server = PrefectServer.from_settings(bootstrap())
    console.print_json(json.dumps(server.up()))
    console.print(f"use it: export PREFECT_API_URL={server.api_url}", highlight=False)


@server_app.command("down")
@handle_errors
def server_down() -> None:
    """Stop the Prefect server this project started."""
    from trustflow.infra.prefect_server import PrefectServer

    console.print("stopped" if PrefectServer.from_settings(bootstrap()).down() else "not running")


@server_app.command("status")
@handle_errors
def server_status() -> None:
    """Is our Prefect server running and healthy."""
    from trustflow.infra.prefect_server import PrefectServer

    console.print_json(json.dumps(PrefectServer.from_settings(bootstrap()).status()))
