from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from trustflow.infra.processes import ManagedProcess, free_port_with_grpc, port_open


def test_start_and_stop_only_our_process(tmp_path: Path) -> None:
    proc = ManagedProcess("sleeper", tmp_path)
    pid = proc.start(["sleep", "60"])
    assert proc.running_pid() == pid
    assert proc.stop(timeout_s=5) is True
    assert proc.running_pid() is None and not proc.pid_file.exists()
    assert proc.stop() is False


def test_recycled_pid_is_never_signalled(tmp_path: Path) -> None:
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        proc = ManagedProcess("ghost", tmp_path)
        tmp_path.mkdir(exist_ok=True)
        # a stale pid file that happens to name a live process we did not start
        proc.pid_file.write_text(json.dumps({"pid": bystander.pid, "start_ticks": 1}))
        assert proc.running_pid() is None
        assert proc.stop(timeout_s=1) is False
        time.sleep(0.2)
        assert bystander.poll() is None, "the bystander must survive"
    finally:
        bystander.kill()
        bystander.wait()


def test_free_port_pairs() -> None:
    port = free_port_with_grpc()
    assert 20000 <= port <= 55535
    assert not port_open(port) and not port_open(port + 10000)


def test_ray_token_is_private_and_never_replaced(tmp_path: Path) -> None:
    from trustflow.infra.local_credentials import ensure_ray_token

    path = ensure_ray_token(tmp_path / "home")
    token = path.read_text()
    assert len(token) == 64 and path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert ensure_ray_token(tmp_path / "home") == path and path.read_text() == token, "running clusters read it"
    assert [p.name for p in path.parent.iterdir()] == [path.name], "no temporary file left behind"


def test_service_state_dir_and_log_are_private(tmp_path: Path) -> None:
    state = tmp_path / "svc"
    state.mkdir(mode=0o755)
    (state / "svc.log").write_text("from an older run\n")
    (state / "svc.log").chmod(0o644)
    proc = ManagedProcess("svc", state)
    proc.start(["true"])
    proc.stop(timeout_s=5)
    assert state.stat().st_mode & 0o777 == 0o700, "logs and data of our services are ours alone"
    assert proc.log_file.stat().st_mode & 0o777 == 0o600
    assert proc.log_file.read_text().startswith("from an older run"), "the log is appended to, not replaced"
