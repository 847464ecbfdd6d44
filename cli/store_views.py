"""``trustflow runs ls``, ``trustflow datasets ls`` and ``trustflow show``: read the store."""

from __future__ import annotations

import pyarrow as pa
import typer
from rich.table import Table

from trustflow.cli.common import bootstrap, console, handle_errors
from trustflow.errors import StageNotFound, StoreError

runs_app = typer.Typer(no_args_is_help=True, help="Runs and their stages in the store.")
datasets_app = typer.Typer(no_args_is_help=True, help="Ingested datasets.")


def _store(store_url: str | None):  # noqa: ANN202
    from trustflow.data.store import ArtifactStore

    settings = bootstrap()
    return ArtifactStore(store_url or settings.effective_store_url, settings)


@runs_app.command("ls")
@handle_errors
def runs_ls(
    flow: str | None = typer.Option(None, "--flow", help="Only runs of this flow."),
    store_url: str | None = typer.Option(None, "--store", help="Override the store URL."),
) -> None:
    """List complete stages per run (incomplete ones have no manifest and are not shown)."""
    store = _store(store_url)
    table = Table(title=f"runs in {store.url}")
    for col in ("flow", "run_id", "stage", "rows", "parts", "schema", "written"):
        table.add_column(col)
    for ref, m in store.list_stages(flow=flow):
        table.add_row(
            ref.flow,
            ref.run_id,
            ref.stage,
            str(m.rows),
            str(len(m.parts)),
            f"{m.schema_name} v{m.schema_version}",
            m.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
    console.print(table)


@datasets_app.command("ls")
@handle_errors
def datasets_ls(store_url: str | None = typer.Option(None, "--store", help="Override the store URL.")) -> None:
    """List ingested datasets with their row counts."""
    from trustflow.cli.main import print_datasets
    from trustflow.tasks.ingest import list_datasets

    print_datasets([d.as_dict() for d in list_datasets(_store(store_url))], listing=True)


def _cell(value: object, width: int = 60) -> str:
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    text = str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


@handle_errors
def show(
    run: str = typer.Argument(..., help="A run id, or flow/run_id."),
    stage: str | None = typer.Option(
        None, "--stage", "-s", help="Stage to print (default: the only one, or list them)."
    ),
    limit: int = typer.Option(20, "--limit", "-n", min=0, help="Rows to print."),
    columns: str | None = typer.Option(None, "--columns", "-c", help="Comma-separated columns."),
    store_url: str | None = typer.Option(None, "--store", help="Override the store URL."),
) -> None:
    """Print a stage's table (first rows) from the store."""
    from trustflow.data.store import StageRef

    store = _store(store_url)
    matches = store.find_runs(run)
    if not matches:
        raise StageNotFound(f"no run {run!r} in {store.url} (see trustflow runs ls)")
    if len(matches) > 1:
        raise StageNotFound(f"run id {run!r} exists in flows {[f for f, _ in matches]}; use flow/run_id")
    flow, run_id = matches[0]
    stages = [ref.stage for ref, _ in store.list_stages(flow=flow, run_id=run_id)]
    if stage is None:
        if len(stages) != 1:
            raise StageNotFound(f"run {flow}/{run_id} has stages {stages}; pick one with --stage")
        stage = stages[0]
    ref = StageRef(flow, run_id, stage)
    manifest = store.require_manifest(ref)
    cols = [c.strip() for c in columns.split(",")] if columns else None
    available = store.dataset(ref).schema.names
    unknown = [c for c in cols or [] if c not in available]
    if unknown:
        raise StoreError(f"--columns: {unknown} not in stage {ref}; columns: {', '.join(available)}")
    data: pa.Table = store.dataset(ref).head(limit, columns=cols)
    table = Table(title=f"{ref} — {manifest.rows} rows, {manifest.schema_name} v{manifest.schema_version}")
    for name in data.column_names:
        table.add_column(name, overflow="fold")
    for row in data.to_pylist():
        table.add_row(*[_cell(v) for v in row.values()])
    console.print(table)
