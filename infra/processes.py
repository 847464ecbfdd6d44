"""Background services tracked by a pid file, so ``down`` stops only what ``up`` started.

The pid file records the pid *and* the process start time; a recycled pid belonging to
another program never matches, so we never signal a process we did not start.

A service's state directory (SeaweedFS keeps its data there too) is made private (0700) and
its log file 0600 when it starts: logs can name identities (SeaweedFS logs the S3 access key
id at ``-v>=0``) and the data is the bucket's content, neither of which other local users
should read.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from trustflow.errors import ServiceError


def _proc_start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (Linux /proc), None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields and fields[0] == "Z":  # zombie: exited, not yet reaped
        return None
    return int(fields[19])


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_with_grpc(offset: int = 10000, tries: int = 200) -> int:
    """A free port P with P+offset free too (SeaweedFS puts each gRPC port at +10000)."""
    import random

    for _ in range(tries):
        port = random.randint(20000, 65535 - offset)
        if not port_open(port) and not port_open(port + offset) and _bindable(port) and _bindable(port + offset):
            return port
    raise ServiceError("no free port pair on 127.0.0.1")


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


@dataclass
class ManagedProcess:
    """A service process with its pid file and log file under a state directory."""

    name: str
    state_dir: Path

    @property
    def pid_file(self) -> Path:
        return self.state_dir / f"{self.name}.pid.json"

    @property
    def log_file(self) -> Path:
        return self.state_dir / f"{self.name}.log"

    def record(self) -> dict | None:
        try:
            return json.loads(self.pid_file.read_text())
        except (OSError, ValueError):
            return None

    def running_pid(self) -> int | None:
        rec = self.record()
        if not rec:
            return None
        pid = int(rec["pid"])
        if _proc_start_ticks(pid) != rec.get("start_ticks"):
            return None
        return pid

    def start(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        info: Mapping[str, object] | None = None,
        cwd: Path | None = None,
    ) -> int:
        """Start ``argv`` detached (own session), logging to the log file; returns its pid."""
        if self.running_pid() is not None:
            raise ServiceError(f"{self.name} already running (pid file {self.pid_file})")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state_dir, 0o700)
        fd = os.open(self.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.fchmod(fd, 0o600)  # an older log may predate this
        with os.fdopen(fd, "ab") as log:
            proc = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(env) if env is not None else None,
                cwd=str(cwd) if cwd else None,
                start_new_session=True,
            )
        rec = {"pid": proc.pid, "start_ticks": _proc_start_ticks(proc.pid), "argv0": argv[0], **(info or {})}
        tmp = self.pid_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(rec))
        tmp.replace(self.pid_file)
        self._popen = proc  # keep a handle so the child is reaped when we stop it
        return proc.pid

    def wait_ready(self, ready: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.running_pid() is None:
                tail = self.log_tail()
                raise ServiceError(f"{self.name} exited while starting; last log lines:\n{tail}")
            if ready():
                return
            time.sleep(0.25)
        raise ServiceError(f"{self.name} did not become ready ({what}) within {timeout_s:.0f}s; log: {self.log_file}")

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout_s: float = 20.0) -> bool:
        """SIGTERM the process group we started, SIGKILL after ``timeout_s``; True if it was running."""
        pid = self.running_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self._alive(pid):
            time.sleep(0.2)
        if self._alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            while self._alive(pid):
                time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
        return True

    def _alive(self, pid: int) -> bool:
        popen = getattr(self, "_popen", None)
        if popen is not None and popen.pid == pid:
            return popen.poll() is None
        return _proc_start_ticks(pid) is not None
