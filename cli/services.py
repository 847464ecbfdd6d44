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
def server_up(
    worker: bool = typer.Option(
        True, "--worker/--no-worker", help="Also start a process worker for the trustflow-process pool."
    ),
) -> None:
    """Start a Prefect server on 127.0.0.1 (and a worker), wait until it is healthy."""
    from trustflow.infra.prefect_deploy import PrefectWorker
    from trustflow.infra.prefect_server import PrefectServer

    settings = bootstrap()
    server = PrefectServer.from_settings(settings)
    status = server.up()
    if worker:
        status["worker"] = PrefectWorker(settings.home_dir / "prefect-worker", server.api_url).up()
    console.print_json(json.dumps(status))
    console.print(f"use it: export PREFECT_API_URL={server.api_url}; then `trustflow deploy`", highlight=False)


@server_app.command("down")
@handle_errors
def server_down() -> None:
    """Stop the Prefect server (and worker) this project started."""
    from trustflow.infra.prefect_deploy import PrefectWorker
    from trustflow.infra.prefect_server import PrefectServer

    settings = bootstrap()
    server = PrefectServer.from_settings(settings)
    worker_stopped = PrefectWorker(settings.home_dir / "prefect-worker", server.api_url).down()
    console.print(("stopped" if server.down() else "not running") + (" (worker stopped)" if worker_stopped else ""))


@server_app.command("status")
@handle_errors
def server_status() -> None:
    """Is our Prefect server running and healthy."""
    from trustflow.infra.prefect_server import PrefectServer

    console.print_json(json.dumps(PrefectServer.from_settings(bootstrap()).status()))


@handle_errors
def deploy(
    api_url: str | None = typer.Option(
        None, "--api-url", help="Prefect API (default: $PREFECT_API_URL, else our local server)."
    ),
    name: list[str] | None = typer.Option(None, "--name", help="Only these deployments (repeatable); default all."),
) -> None:
    """Register the deployments of prefect.yaml (schedules and triggers included) with a Prefect server."""
    import os

    from trustflow.infra.prefect_deploy import deploy_all
    from trustflow.infra.prefect_server import PrefectServer

    settings = bootstrap()
    url = api_url or os.environ.get("PREFECT_API_URL") or PrefectServer.from_settings(settings).api_url
    out = deploy_all(url, name)
    deployed = [line.strip() for line in out.splitlines() if "Deployment '" in line and "successfully" in line]
    console.print("\n".join(deployed) or out[-2000:], highlight=False)
