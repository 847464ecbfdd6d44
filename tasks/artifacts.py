"""The Prefect artifacts a pipeline run publishes for its leaderboard: a table and a summary.

Every pipeline's board is a list of flat rows with a ``row_key``; the table artifact shows them
rounded (the Parquet leaderboard keeps full precision), the markdown artifact shows the
pipeline's own table and where the leaderboard and plots are in the store."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from trustflow import names


def publish_board(
    key: str,
    title: str,
    description: str,
    board: Sequence[Mapping[str, Any]],
    table_lines: Sequence[str],
    run_uri: str,
    plots: Sequence[str] = (),
) -> None:
    """Artifacts ``<key>-leaderboard`` (table) and ``<key>-summary`` (markdown); ``run_uri`` is
    ``<store>/runs/<flow>/<run_id>``, the plots are file names under its ``plots/``."""
    create_table_artifact(
        key=f"{key}-leaderboard",
        table=[
            {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items() if k != "row_key"} for r in board
        ],
        description=description,
    )
    lines = [f"# {title}", "", *table_lines, "", f"leaderboard: `{run_uri}/{names.LEADERBOARD}/`"]
    if plots:
        lines.append(f"plots: `{run_uri}/plots/` ({', '.join(plots)})")
    create_markdown_artifact(key=f"{key}-summary", markdown="\n".join(lines))


__all__ = ["publish_board"]
