"""The multi-node test cluster's process control (infra/ray_nodes.py) and loopback joining."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from trustflow.infra.ray_nodes import MARKER, LocalRayCluster, NodeSpec
from trustflow.infra.ray_runtime import _is_loopback_address


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1:6379", True),
        ("localhost:6379", True),
        ("ray://127.0.0.1:10001", True),
        ("[::1]:6379", True),
        ("ray://head.svc:10001", False),
        ("10.0.0.5:6379", False),
        ("auto", False),
    ],
)
def test_loopback_ray_address(address: str, loopback: bool) -> None:
    assert _is_loopback_address(address) is loopback


def _sleeper(marker: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, MARKER: marker}
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env, start_new_session=True)


def test_stop_node_signals_only_that_nodes_processes(tmp_path: Path) -> None:
    cluster = LocalRayCluster(root=tmp_path, workers=[NodeSpec("w1")], cluster_id="c1")
    mine = _sleeper("c1/w1")
    other_node = _sleeper("c1/head")
    other_cluster = _sleeper("c2/w1")
    try:
        assert cluster.node_pids("w1") == [mine.pid]
        cluster.stop_node("w1", signal.SIGKILL)
        assert mine.wait(timeout=5) == -signal.SIGKILL
        assert other_node.poll() is None and other_cluster.poll() is None  # never another node's or cluster's
        assert cluster.node_pids("w1") == []
    finally:
        for proc in (mine, other_node, other_cluster):
            proc.kill()
            proc.wait()


def test_node_resource_and_client_env(tmp_path: Path) -> None:
    cluster = LocalRayCluster(root=tmp_path, port=12345)
    assert NodeSpec("w1").resource == "tf_node_w1"
    assert cluster.address == "127.0.0.1:12345"
    env = cluster.client_env()
    assert env["RAY_AUTH_MODE"] == "token" and env["RAY_AUTH_TOKEN_PATH"] == str(tmp_path / "ray-auth-token")
    assert env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0"
