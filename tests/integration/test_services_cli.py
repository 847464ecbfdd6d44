"""`trustflow storage|server up|status|down` start and stop real services, and only theirs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trustflow.infra.processes import free_port, free_port_with_grpc, port_open

pytestmark = pytest.mark.integration


def cli(args: list[str], env: dict[str, str], timeout: int = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trustflow.cli.main", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def _json_prefix(text: str) -> dict:
    return json.loads(text[: text.rindex("}") + 1])


def test_storage_up_status_down(tmp_path: Path) -> None:
    env = dict(os.environ, TRUSTFLOW_HOME=str(tmp_path / "home"))
    for name in ("S3_PORT", "MASTER_PORT", "VOLUME_PORT", "FILER_PORT"):
        env[f"TRUSTFLOW_SEAWEEDFS__{name}"] = str(free_port_with_grpc())
    env.pop("AWS_ACCESS_KEY_ID")
    env.pop("AWS_SECRET_ACCESS_KEY")  # `up` must create local credentials itself
    s3_port = int(env["TRUSTFLOW_SEAWEEDFS__S3_PORT"])
    try:
        up = cli(["storage", "up"], env)
        assert up.returncode == 0, up.stderr
        assert "TRUSTFLOW_STORE_URL=s3://trustflow" in up.stdout
        secrets = tmp_path / "home" / "secrets" / "s3.json"
        assert secrets.stat().st_mode & 0o077 == 0, "credentials file must be private"
        assert json.loads(secrets.read_text())["secret_access_key"] not in up.stdout + up.stderr
        status = _json_prefix(cli(["storage", "status"], env).stdout)
        assert status["running"] and status["s3_port_open"]
        # the managed endpoint picks the local credentials up by itself
        env2 = dict(env, TRUSTFLOW_STORE_URL="s3://trustflow", TRUSTFLOW_S3_ENDPOINT_URL=f"http://127.0.0.1:{s3_port}")
        runs = cli(["runs", "ls"], env2)
        assert runs.returncode == 0, runs.stderr
    finally:
        down = cli(["storage", "down"], env)
    assert down.returncode == 0 and "stopped" in down.stdout
    assert not port_open(s3_port)
    assert "not running" in cli(["storage", "down"], env).stdout


def test_prefect_server_up_down(tmp_path: Path) -> None:
    port = free_port()
    env = dict(os.environ, TRUSTFLOW_HOME=str(tmp_path / "home"), TRUSTFLOW_PREFECT_SERVER__PORT=str(port))
    try:
        up = cli(["server", "up"], env)
        assert up.returncode == 0, up.stderr
        assert f"PREFECT_API_URL=http://127.0.0.1:{port}/api" in up.stdout
        assert _json_prefix(cli(["server", "status"], env).stdout)["healthy"] is True
    finally:
        down = cli(["server", "down"], env)
    assert "stopped" in down.stdout
    assert not port_open(port)
