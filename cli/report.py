"""``trustflow report``: a self-contained HTML page for one run, or the combined leaderboards."""

from __future__ import annotations

from pathlib import Path

import typer

from trustflow.cli.common import bootstrap, handle_errors


@handle_errors
def report_cmd(
    target: str = typer.Argument(..., help="A run id (or flow/run_id), or 'leaderboard' for the combined page."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Where to write the page (default: <home>/reports/<target>.html)."
    ),
    store_url: str | None = typer.Option(None, "--store", help="Override the store URL."),
) -> None:
    """Write one HTML page (tables and plots embedded, no external resources) and print its path."""
    settings = bootstrap()
    from trustflow.data.store import ArtifactStore
    from trustflow.tasks.report import LEADERBOARD_TARGET, build_leaderboard_report, build_run_report, write_report

    store = ArtifactStore(store_url or settings.effective_store_url, settings)
    html = build_leaderboard_report(store) if target == LEADERBOARD_TARGET else build_run_report(store, target)
    path = write_report(html, out or settings.home_dir / "reports" / f"{target.replace('/', '__')}.html")
    print(path)


def register(app: typer.Typer) -> None:
    """Add ``report`` to the ``trustflow`` command."""
    app.command("report")(report_cmd)
