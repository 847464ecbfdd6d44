"""A real Prefect server on 127.0.0.1 (SQLite under ``<home>/prefect-server``).

Deployments, schedules and triggers need a server; flows run from the CLI do not (they
use Prefect's ephemeral mode unless ``PREFECT_API_URL`` is set).
"""

from __future__ import annotations

import http.client
import os
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from trustflow.errors import ServiceError
from trustflow.infra.processes import ManagedProcess, port_open
from trustflow.settings import Settings


@dataclass
class PrefectServer:
    state_dir: Path
    port: int

    @classmethod
    def from_settings(cls, settings: Settings) -> PrefectServer:
        return cls(settings.home_dir / "prefect-server", settings.prefect_server.port)

    @property
    def process(self) -> ManagedProcess:
        return ManagedProcess("prefect-server", self.state_dir)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def healthy(self) -> bool:
        """Whether our server answers ``/health``. Anything else on the port — a non-HTTP
        service that took it while ours was starting answers garbage — is "not ready", so the
        wait ends with the server's own exit ("address in use") instead of a parser error."""
        try:
            with urllib.request.urlopen(f"{self.api_url}/health", timeout=2) as response:
                return response.status == 200
        except (OSError, http.client.HTTPException):
            return False

    def up(self, timeout_s: float = 120.0) -> dict[str, object]:
        if self.process.running_pid() is None:
            if port_open(self.port):
                raise ServiceError(f"cannot start Prefect server: port {self.port} on 127.0.0.1 is in use")
            home = self.state_dir / "home"
            home.mkdir(parents=True, exist_ok=True)
            env = dict(os.environ)
            env.update({"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"})
            env.pop("PREFECT_API_URL", None)
            prefect = str(Path(sys.executable).parent / "prefect")
            self.process.start(
                [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
                env=env,
                info={"api_url": self.api_url},
            )
        self.process.wait_ready(self.healthy, timeout_s, f"GET {self.api_url}/health")
        return self.status()

    def down(self) -> bool:
        return self.process.stop(timeout_s=20)

    def status(self) -> dict[str, object]:
        pid = self.process.running_pid()
        return {
            "running": pid is not None,
            "pid": pid,
            "api_url": self.api_url,
            "healthy": self.healthy() if pid else False,
        }
