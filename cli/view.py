"""``trustflow view RUN``: triage an S-Eval run's verdicts in a browser, or export them.

Three uses, one filter syntax (``--filter KEY=VALUE``, repeatable; the same keys as the
page's URL query): serve the run on 127.0.0.1 (the default), write one self-contained page
(``--write``, small runs), or export the filtered rows (``--export out.jsonl|out.csv``; the
CSV is the relabel CSV ``trustflow seval relabel`` reads). A bad run id or filter is one
``error:`` line before anything starts.
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlencode

import typer

from trustflow.cli.common import bootstrap, console, handle_errors
from trustflow.errors import InputError

EXPORT_FORMATS = {".jsonl": "jsonl", ".csv": "csv"}


def parse_filter_options(filters: list[str]) -> dict[str, str]:
    """``["model=m", "verdict=unsafe"]`` → a mapping; a malformed item is an error naming it."""
    out: dict[str, str] = {}
    for item in filters:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--filter {item!r}: use KEY=VALUE, e.g. --filter verdict=unsafe")
        out[key.strip()] = value.strip()
    return out


@handle_errors
def view_command(
    run_id: str = typer.Argument(..., help="An S-Eval run id (seval-…)."),
    filters: list[str] = typer.Option(
        [],
        "--filter",
        "-f",
        help="KEY=VALUE, repeatable: model, lang, dimension, attack (none = base prompts), critic_id, tag (risk tag), "
        "verdict (unsafe|safe|error), score_min, score_max, judge_error (true|false), q (text), sort, order, "
        "page_size.",
    ),
    port: int = typer.Option(8765, "--port", min=0, max=65535, help="Port on 127.0.0.1; 0 picks a free one."),
    write: Path | None = typer.Option(None, "--write", help="Write a self-contained page of the filtered rows."),
    max_rows: int = typer.Option(5000, "--max-rows", min=1, help="Most rows a --write page may hold."),
    export: Path | None = typer.Option(None, "--export", help="Write the filtered rows to a .jsonl or .csv file."),
    store_url: str | None = typer.Option(None, "--store", help="Override the store URL."),
) -> None:
    """Triage viewer: filter a run's verdicts, read prompt / response / critic side by side, relabel, export."""
    fmt = None
    if export is not None:
        fmt = EXPORT_FORMATS.get(export.suffix.lower())
        if fmt is None:
            raise InputError(f"--export {export}: name a .jsonl or .csv file")
    if export is not None and write is not None:
        raise InputError("--export and --write: pick one")
    settings = bootstrap()
    from trustflow.data.store import ArtifactStore
    from trustflow.tasks.seval.viewer import open_run, parse_filter

    store = ArtifactStore(store_url or settings.effective_store_url, settings)
    view = open_run(store, run_id)
    f = parse_filter(parse_filter_options(filters), where="--filter")
    view.check(f)
    if export is not None and fmt is not None:
        tmp = export.with_name(f".{export.name}.tmp")
        with tmp.open("w", encoding="utf-8", newline="") as out:
            for chunk in view.export(f, fmt):  # type: ignore[arg-type]
                out.write(chunk)
        tmp.replace(export)  # atomic: a killed export leaves no half file under the real name
        console.print(f"exported {view.matches(f).num_rows} rows of {run_id} → {export}")
        return
    if write is not None:
        from trustflow.tasks.seval.viewer_page import static_page

        page, n = static_page(view, f, max_rows)
        tmp = write.with_name(f".{write.name}.tmp")
        tmp.write_text(page, encoding="utf-8")
        tmp.replace(write)
        console.print(f"wrote {write} ({n} rows of {run_id}; filters work offline in the page)")
        return
    from trustflow.tasks.seval.viewer_server import start_server

    try:
        server, thread = start_server(view, port)
    except OSError as exc:
        raise InputError(f"--port {port}: cannot listen on 127.0.0.1:{port} ({exc.strerror})") from None
    query = urlencode(f.query_params())
    console.print(f"viewer of {run_id}: {server.url}{'?' + query if query else ''}  (Ctrl-C stops)", soft_wrap=True)
    try:
        while thread.is_alive():
            time.sleep(0.5)
    finally:
        server.shutdown()
        server.server_close()
