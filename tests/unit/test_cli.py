from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from trustflow.cli.main import app
from trustflow.tasks.ingest.common import INGESTERS

runner = CliRunner()


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["config"],
        ["config", "show"],
        ["storage"],
        ["storage", "up"],
        ["server"],
        ["ingest"],
        ["runs", "ls"],
        ["datasets", "ls"],
        ["show"],
        ["demo"],
        ["seval", "run"],
        ["seval", "validate-critic"],
        ["gate"],
        ["llm", "serve"],
        ["llm", "chat"],
    ],
)
def test_every_command_has_help(args: list[str]) -> None:
    result = runner.invoke(app, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def command_paths(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and sub-command of the app, found by walking it (a new one is covered).

    Duck-typed: Typer builds on its own copy of click's classes, so ``click.Group`` checks miss."""
    paths = [path]
    if hasattr(command, "list_commands"):
        ctx = command.context_class(command)
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                paths += command_paths(sub, (*path, name))
    return paths


ALL_COMMANDS = command_paths(typer.main.get_command(app))


def test_the_walk_finds_the_commands() -> None:
    assert len(ALL_COMMANDS) > 30, ALL_COMMANDS
    assert {(), ("ingest",), ("seval", "run"), ("events", "relay")} <= set(ALL_COMMANDS)


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=[" ".join(p) or "trustflow" for p in ALL_COMMANDS])
def test_help_of_every_command_renders(path: tuple[str, ...]) -> None:
    """``--help`` exits 0 for every command: a bad help string (e.g. rich markup such as
    ``[/best|/final]`` in an option's help) fails here, not in a user's terminal."""
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, f"trustflow {' '.join(path)} --help: {result.output}{result.exception!r}"
    assert "Usage" in result.output


def test_unknown_kind_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["ingest", str(tmp_path), "--kind", "parquet-soup"])
    assert result.exit_code != 0
    listed = result.output.split("use one of: ", 1)[1].strip().split(", ")
    assert "--kind 'parquet-soup' is not a dataset kind" in result.output
    assert listed == sorted(INGESTERS.names()) and {"coco", "imagefolder", "labels", "seval", "grabcut"} <= set(listed)


def test_missing_source_is_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "trustflow.cli.main", "ingest", str(tmp_path / "nope"), "--kind", "seval"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert lines[-1].startswith("error: source") and "no such file or directory" in lines[-1]
    assert "Traceback" not in result.stderr


def test_config_show_masks_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "hunter2-do-not-print")
    result = runner.invoke(app, ["config", "show"])
    assert result.exit_code == 0
    assert "hunter2" not in result.output and '"***"' in result.output
    assert "effective_store_url" in result.output


def test_show_unknown_run_fails_cleanly(tmp_path: Path) -> None:
    result = runner.invoke(app, ["show", "no-such-run", "--store", f"file://{tmp_path}"])
    assert result.exit_code == 1
    assert "no run 'no-such-run'" in result.output


def test_the_demo_points_every_flow_at_its_store_and_restores_the_environment(monkeypatch) -> None:  # noqa: ANN001
    """Flows that build their own store from the environment must see the demo's SeaweedFS
    bucket while the demo runs, and the caller's environment comes back afterwards."""
    from trustflow.cli.demo import _store_environment
    from trustflow.settings import load_settings

    monkeypatch.delenv("TRUSTFLOW_STORE_URL", raising=False)
    monkeypatch.setenv("TRUSTFLOW_S3_ENDPOINT_URL", "http://127.0.0.1:1")
    demo = load_settings(store_url="s3://demo-bucket", s3_endpoint_url="http://127.0.0.1:8333")
    with _store_environment(demo):
        seen = load_settings()
        assert seen.effective_store_url == "s3://demo-bucket"
        assert seen.s3_endpoint_url == "http://127.0.0.1:8333"
    assert "TRUSTFLOW_STORE_URL" not in os.environ
    assert os.environ["TRUSTFLOW_S3_ENDPOINT_URL"] == "http://127.0.0.1:1"
