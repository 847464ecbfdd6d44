"""A real multi-node Ray cluster on this one machine, for tests and benchmarks.

Each node is its own ``ray start --block`` process (the head, then workers joining its GCS),
with its own ``--num-cpus`` and a custom resource ``tf_node_<name>`` so work can be pinned to
a node or spread over nodes. Production clusters are started by KubeRay or ``ray start`` on
separate hosts (docs/operations.md, "Production layout"); this exists so the same code paths
(a ``ray_address`` to join, workers that reopen the store from its URL, a node lost mid-stage)
can be exercised here.

Private like the local Ray of ``infra/ray_runtime.py``:

* **Loopback only.** Every node runs in Ray's single-machine mode
  (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``) with node IP 127.0.0.1, so every Ray server binds
  127.0.0.1. ``ray start`` refuses to start a *worker* node in that mode, and in the opposite
  mode rewrites the loopback head address to the machine's outward one; the worker's
  ``ray start`` therefore runs through :data:`_WORKER_START`, which lifts exactly those two
  checks inside that one CLI process (its raylet and workers still run in single-machine mode).
* **Token authentication** (``RAY_AUTH_MODE=token``) with a fresh random token in
  ``<root>/ray-auth-token`` (0600), named by ``RAY_AUTH_TOKEN_PATH``; :meth:`client_env`
  gives a driver the variables to join with.

Stopping touches only what was started: every process of a node (its ``ray start``, GCS,
raylet, agents and Ray workers, which start their own process groups) carries the marker
``TRUSTFLOW_RAY_NODE=<cluster id>/<node>`` in its environment, and :meth:`stop_node` signals
exactly the processes of this user whose environment holds it. ``ray stop`` is never used:
it stops every Ray on the machine.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from trustflow.errors import ServiceError
from trustflow.infra.processes import free_port, port_open

MARKER = "TRUSTFLOW_RAY_NODE"
LOOPBACK = "127.0.0.1"

# ``ray start`` for a worker node in single-machine mode (see the module docstring).
_WORKER_START = """
import sys
from ray._private import ray_constants, services
ray_constants.ENABLE_RAY_CLUSTER = True  # allow joining a head (the CLI's check only)
services.resolve_ip_for_localhost = lambda host: host  # keep the head's 127.0.0.1
from ray.scripts.scripts import main
sys.argv[0] = "ray"
sys.exit(main())
"""


@dataclass(frozen=True)
class NodeSpec:
    """One node: a name (its resource is ``tf_node_<name>``), CPUs, extra environment."""

    name: str
    num_cpus: int = 1
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def resource(self) -> str:
        return f"tf_node_{self.name}"


@dataclass
class LocalRayCluster:
    """A head node plus worker nodes as separate processes on 127.0.0.1 (see the module doc)."""

    root: Path
    head: NodeSpec = field(default_factory=lambda: NodeSpec("head"))
    workers: list[NodeSpec] = field(default_factory=list)
    cluster_id: str = field(default_factory=lambda: secrets.token_hex(4))
    port: int = 0
    token_file: Path | None = None  # default: a fresh token in <root>/ray-auth-token
    _procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _temp: Path | None = None

    def _ray_temp(self) -> Path:
        """Ray's session folder: short, under /tmp (its unix socket paths must stay < 108 bytes)."""
        if self._temp is None:
            self._temp = Path(tempfile.mkdtemp(prefix="tf-ray-", dir="/tmp"))
        return self._temp

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def token_path(self) -> Path:
        """Ray's C++ side keeps the first token a process loads: a driver that already ran a
        local Ray (``ensure_ray_token``) joins with that one, so pass it as ``token_file``."""
        return self.token_file or self.root / "ray-auth-token"

    def client_env(self) -> dict[str, str]:
        """What a driver's environment needs to join (``ray_address`` = :attr:`address`)."""
        return {
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": str(self.token_path),
        }

    def _node_env(self, node: NodeSpec) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_ADDRESS", "RAY_AUTH_TOKEN"))}
        env.update(self.client_env())
        env.update({"RAY_USAGE_STATS_ENABLED": "0", MARKER: f"{self.cluster_id}/{node.name}", **node.env})
        return env

    def start(self, timeout_s: float = 120.0) -> LocalRayCluster:
        """Start the head, then every worker; returns once each node has joined."""
        self.root.mkdir(parents=True, exist_ok=True)
        if not self.token_path.exists():
            self.token_path.touch(mode=0o600)
            self.token_path.write_text(secrets.token_hex(32))
        self.port = self.port or free_port()
        self._start(self.head, head=True)
        self.wait_started(self.head.name, timeout_s)
        for node in self.workers:
            self._start(node, head=False)
        for node in self.workers:
            self.wait_started(node.name, timeout_s)
        return self

    def add_worker(self, node: NodeSpec, timeout_s: float = 120.0) -> None:
        """Join one more worker node (e.g. a replacement for a killed one)."""
        self.workers.append(node)
        self._start(node, head=False)
        self.wait_started(node.name, timeout_s)

    def _start(self, node: NodeSpec, head: bool) -> None:
        common = [
            f"--node-ip-address={LOOPBACK}",
            f"--num-cpus={node.num_cpus}",
            f'--resources={{"{node.resource}": 1}}',
            f"--dashboard-agent-listen-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            "--disable-usage-stats",
            "--block",
        ]
        if head:
            argv = [
                str(Path(sys.executable).parent / "ray"),
                "start",
                "--head",
                f"--port={self.port}",
                f"--ray-client-server-port={free_port()}",
                f"--temp-dir={self._ray_temp()}",
                "--include-dashboard=false",
                *common,
            ]
        else:
            argv = [sys.executable, "-c", _WORKER_START, "start", f"--address={self.address}", *common]
        log = (self.root / f"{node.name}.log").open("ab")
        self._procs[node.name] = subprocess.Popen(
            argv,
            env=self._node_env(node),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()

    def alive_nodes(self) -> list[dict]:
        """The GCS's live nodes (``ray.nodes()`` rows) as seen from a short-lived client."""
        code = (
            f"import json, ray; ray.init(address={self.address!r}, logging_level='ERROR', log_to_driver=False);"
            "print(json.dumps([n for n in ray.nodes() if n['Alive']], default=str))"
        )
        if not port_open(self.port):
            return []
        env = {**os.environ, **self.client_env()}
        env.pop("RAY_ADDRESS", None)
        try:
            out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            return []
        if out.returncode != 0:
            return []
        import json

        return list(json.loads(out.stdout.strip().splitlines()[-1]))

    def wait_started(self, name: str, timeout_s: float) -> None:
        """Wait for the node's ``ray start`` to report the node up (it registered with the GCS);
        its process exiting first is an error with the log's tail."""
        proc, log = self._procs[name], self.root / f"{name}.log"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ServiceError(f"ray node {name} exited ({proc.returncode}): {self._log_tail(name)}")
            with contextlib.suppress(OSError):
                if "Ray runtime started." in log.read_text(errors="replace"):
                    return
            time.sleep(0.2)
        raise ServiceError(f"ray node {name} not up after {timeout_s:.0f} s: {self._log_tail(name)}")

    def _log_tail(self, name: str, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join((self.root / f"{name}.log").read_text(errors="replace").splitlines()[-lines:])
        return ""

    def node_pids(self, name: str) -> list[int]:
        """Pids of this user's processes that carry the node's marker (see the module doc)."""
        marker = f"{MARKER}={self.cluster_id}/{name}".encode()
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                if entry.stat().st_uid == os.getuid() and marker in (entry / "environ").read_bytes().split(b"\0"):
                    pids.append(int(entry.name))
        return pids

    def stop_node(self, name: str, sig: int = signal.SIGTERM, timeout_s: float = 3.0) -> None:
        """Stop one node: ``sig`` to each of its processes, SIGKILL to any left after ``timeout_s``.

        ``sig=SIGKILL`` is a crash of that node (what the resume tests need)."""
        proc = self._procs.get(name)
        deadline = time.monotonic() + timeout_s
        for current in (sig, signal.SIGKILL):
            for pid in self.node_pids(name):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, current)
            while self.node_pids(name) and time.monotonic() < deadline:
                time.sleep(0.2)
            if not self.node_pids(name):
                break
            deadline = time.monotonic() + 5.0
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)

    def stop(self) -> None:
        """Stop every node this object started, workers first."""
        for name in reversed(list(self._procs)):
            self.stop_node(name)
        if self._temp is not None:
            shutil.rmtree(self._temp, ignore_errors=True)


@contextlib.contextmanager
def local_ray_cluster(
    root: Path, workers: list[NodeSpec], head: NodeSpec | None = None, token_file: Path | None = None
) -> Iterator[LocalRayCluster]:
    """A started :class:`LocalRayCluster`, stopped on exit whatever happens."""
    cluster = LocalRayCluster(root=root, head=head or NodeSpec("head"), workers=list(workers), token_file=token_file)
    try:
        yield cluster.start()
    finally:
        cluster.stop()


__all__ = ["MARKER", "LocalRayCluster", "NodeSpec", "local_ray_cluster"]
