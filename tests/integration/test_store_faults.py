"""Store outages against a real SeaweedFS: a killed store is one prompt error line, a restarted
one is ridden out, and ``storage up`` right after a SIGTERM works.

The store here is this module's own SeaweedFS (killing the session's would break other
tests). Runs are the real CLI in a subprocess; the store's test gate
(``TRUSTFLOW_TEST_PART_GATE``) holds every part write until the test has killed or
restarted the store, so the fault always lands during a part write: no racing sleeps.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.compute as pc
import pytest

from trustflow.data.store import ArtifactStore, StageRef
from trustflow.infra.processes import free_port_with_grpc
from trustflow.infra.seaweedfs import SeaweedFS
from trustflow.settings import SeaweedFSConfig, Settings, load_settings

pytestmark = pytest.mark.integration

BUCKET = "tf-faults"
SEVAL_ROWS = 22000


@pytest.fixture(scope="module")
def fault_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    ports = {name: free_port_with_grpc() for name in ("s3_port", "master_port", "volume_port", "filer_port")}
    server = SeaweedFS(tmp_path_factory.mktemp("fault-seaweedfs"), SeaweedFSConfig(bucket=BUCKET, **ports))
    server.up(timeout_s=90)
    yield server
    server.down()


def ensure_up(server: SeaweedFS) -> None:
    if server.process.running_pid() is None:
        server.up(timeout_s=90)


def kill_store(server: SeaweedFS) -> None:
    """SIGKILL the SeaweedFS this module started (its own process group) and reap it."""
    pid = server.process.running_pid()
    assert pid is not None
    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while server.process._alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    server.process.pid_file.unlink(missing_ok=True)


def settings_for(server: SeaweedFS, prefix: str) -> Settings:
    return load_settings(store_url=f"s3://{BUCKET}/{prefix}", s3_endpoint_url=server.endpoint_url)


def cli_env(server: SeaweedFS, tmp_path: Path, prefix: str, **extra: str) -> dict[str, str]:
    return dict(
        os.environ,
        TRUSTFLOW_HOME=str(tmp_path / "home"),
        TRUSTFLOW_STORE_URL=f"s3://{BUCKET}/{prefix}",
        TRUSTFLOW_S3_ENDPOINT_URL=server.endpoint_url,
        TRUSTFLOW_RAY_NUM_CPUS="2",
        **extra,
    )


def start_cli(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "trustflow.cli.main", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_for_gate(gate: Path, proc: subprocess.Popen[str], timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while not list(gate.glob("waiting-*")):
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"run ended before writing a part (rc {proc.returncode}):\n{err[-3000:]}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail("no part write reached the gate")
        time.sleep(0.05)


def stderr_lines(proc: subprocess.Popen[str]) -> list[tuple[float, str]]:
    """Collect the run's stderr lines with the time each arrived (read on a thread)."""
    import threading

    lines: list[tuple[float, str]] = []

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append((time.monotonic(), line))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    proc.wait(timeout=120)
    reader.join(timeout=10)
    return lines


def finish(proc: subprocess.Popen[str], timeout_s: float) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"run still going after {timeout_s} s:\n{err[-3000:]}")


def check_seval_prompts(server: SeaweedFS, prefix: str) -> None:
    """Exactly the source's rows, each key once."""
    store = ArtifactStore(settings=settings_for(server, prefix))
    (ref, manifest), *others = [(r, m) for r, m in store.list_stages("ingest") if r.stage == "prompts"]
    assert not others
    table = store.read_table(ref, columns=["set", "lang", "split", "prompt_id"])
    assert manifest.rows == table.num_rows == SEVAL_ROWS
    keys = pc.binary_join_element_wise(
        table["set"], table["lang"], table["split"], pc.cast(table["prompt_id"], "string"), "\x00"
    )
    assert pc.count_distinct(keys).as_py() == SEVAL_ROWS
    assert len(manifest.parts) == 4  # one per source file: a retried part was not written twice


def test_store_killed_during_part_write_is_one_line_error_then_clean_rerun(
    fault_store: SeaweedFS, seval_small: Path, tmp_path: Path
) -> None:
    ensure_up(fault_store)
    gate = tmp_path / "gate"
    gate.mkdir()
    prefix = "killed"
    env = cli_env(
        fault_store,
        tmp_path,
        prefix,
        TRUSTFLOW_STORE__RETRY_SECONDS="1",  # the default 30 s rides out restarts; here: how fast it fails
        TRUSTFLOW_TEST_PART_GATE=str(gate),
    )
    proc = start_cli(["ingest", str(seval_small), "--kind", "seval"], env)
    wait_for_gate(gate, proc)
    kill_store(fault_store)
    killed_at = time.monotonic()
    (gate / "open").touch()
    lines = stderr_lines(proc)
    _, _ = finish(proc, 120)
    err = "".join(line for _, line in lines)
    took = next((at - killed_at for at, line in lines if line.startswith("error:")), float("inf"))

    print(f"TIMING error line {took:.1f} s after kill; exit {time.monotonic() - killed_at:.1f} s")
    assert proc.returncode == 1, err[-3000:]
    assert took < 10, f"the error line came {took:.1f} s after the store was killed"
    assert "Traceback" not in err and "RayTaskError" not in err, err[-3000:]
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err[-3000:]
    (line,) = errors
    assert fault_store.endpoint_url in line  # the endpoint
    assert "/prompts" in line and "ingest/" in line  # the stage
    assert "write of part-" in line  # the operation
    log = tmp_path / "home" / "logs" / "trustflow.log"
    assert "Traceback" in log.read_text()  # the whole story is kept, off the terminal

    fault_store.up(timeout_s=90)
    rerun = subprocess.run(
        [sys.executable, "-m", "trustflow.cli.main", "ingest", str(seval_small), "--kind", "seval"],
        env=cli_env(fault_store, tmp_path, prefix),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    check_seval_prompts(fault_store, prefix)


def restart_for_a_while(server: SeaweedFS, gate: Path, down_s: float = 5.0) -> float:
    """SIGTERM the store, let parts hit it while it is down, start it again; the outage's length."""
    stopped_at = time.monotonic()
    server.down()  # SIGTERM, waits for exit (its filer holds a lock until then)
    (gate / "open").touch()
    time.sleep(max(0.0, down_s - (time.monotonic() - stopped_at)))
    server.up(timeout_s=90)
    return time.monotonic() - stopped_at


def test_store_restart_during_ingest_is_ridden_out(fault_store: SeaweedFS, seval_small: Path, tmp_path: Path) -> None:
    ensure_up(fault_store)
    gate = tmp_path / "gate"
    gate.mkdir()
    prefix = "restarted-ingest"
    proc = start_cli(
        ["ingest", str(seval_small), "--kind", "seval"],
        cli_env(fault_store, tmp_path, prefix, TRUSTFLOW_TEST_PART_GATE=str(gate)),
    )
    wait_for_gate(gate, proc)
    outage = restart_for_a_while(fault_store, gate)
    out, err = finish(proc, 180)

    assert proc.returncode == 0, err[-3000:]
    assert outage >= 5
    assert "retry 1 in" in out + err  # the outage was met, and logged, not dodged
    check_seval_prompts(fault_store, prefix)


def test_store_restart_during_seval_run_is_ridden_out(fault_store: SeaweedFS, tiny_llm: str, tmp_path: Path) -> None:
    ensure_up(fault_store)
    gate = tmp_path / "gate"
    gate.mkdir()
    prefix = "restarted-seval"
    args = [
        "seval",
        "run",
        "--targets",
        tiny_llm,
        "--critic",
        "refusal",
        "--suite",
        "seed-suite",
        "--limit",
        "1",
        "--attacks-per-base",
        "1",
        "--batch-size",
        "4",
        "--max-tokens",
        "8",
        "--run-id",
        "outage",
    ]
    env = cli_env(
        fault_store,
        tmp_path,
        prefix,
        TRUSTFLOW_TEST_PART_GATE=str(gate),
        TRUSTFLOW_TEST_PART_GATE_STAGE="responses",  # parts the LLM actors write
    )
    proc = start_cli(args, env)
    wait_for_gate(gate, proc, timeout_s=240)
    outage = restart_for_a_while(fault_store, gate)
    out, err = finish(proc, 240)

    assert proc.returncode == 0, err[-3000:]
    assert outage >= 5
    assert "retry 1 in" in out + err
    store = ArtifactStore(settings=settings_for(fault_store, prefix))
    suite = store.read_table(StageRef("seval_evaluate", "outage", "suite"))
    responses = store.read_table(StageRef("seval_evaluate", "outage", "responses"))
    judgements = store.read_table(StageRef("seval_evaluate", "outage", "judgements"))
    uids = responses["prompt_uid"].to_pylist()
    assert suite.num_rows > 0 and len(uids) == len(set(uids)) == suite.num_rows
    assert set(uids) == set(suite["prompt_uid"].to_pylist())
    assert judgements.num_rows == suite.num_rows


def test_storage_up_right_after_sigterm(tmp_path: Path) -> None:
    """``up`` while the old server is still exiting waits for it, then starts a new one."""
    ports = {name: free_port_with_grpc() for name in ("s3_port", "master_port", "volume_port", "filer_port")}
    env = dict(
        os.environ,
        TRUSTFLOW_HOME=str(tmp_path / "home"),
        **{f"TRUSTFLOW_SEAWEEDFS__{k.upper()}": str(v) for k, v in ports.items()},
        TRUSTFLOW_SEAWEEDFS__BUCKET=BUCKET,
    )
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):  # `storage up` makes its own local keys
        env.pop(k, None)
    server = SeaweedFS(tmp_path / "home" / "seaweedfs", SeaweedFSConfig(bucket=BUCKET, **ports))

    def storage(cmd: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "trustflow.cli.main", "storage", cmd],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    try:
        first = storage("up")
        assert first.returncode == 0, first.stderr
        old = server.process.running_pid()
        assert old is not None
        os.killpg(old, signal.SIGTERM)  # someone else stops it; `up` follows at once
        again = storage("up")
        assert again.returncode == 0, again.stderr
        new = server.process.running_pid()
        assert new is not None and new != old
        assert server.process._alive(old) is False
        assert '"running": true' in again.stdout
    finally:
        storage("down")
        pid = server.process.running_pid()
        if pid is not None:  # only a server this test started
            os.killpg(pid, signal.SIGKILL)
