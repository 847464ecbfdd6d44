"""Deployments and a process worker against a Prefect server (ours on 127.0.0.1 or any other).

Why a wrapper around the ``prefect`` CLI: deploying needs the project directory, the API
URL, the work pool to exist, and the worker needs the same TRUSTFLOW_* environment as the
CLI (store URL, endpoints, credentials from the environment) — forgetting one of them gives
deployments that are registered but never run. Secrets are passed through the environment
only; nothing here writes them to prefect.yaml or logs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from trustflow.errors import ServiceError
from trustflow.infra.processes import ManagedProcess

PROJECT_DIR = Path(__file__).resolve().parent.parent
WORK_POOL = "trustflow-process"


def _prefect() -> str:
    return str(Path(sys.executable).parent / "prefect")


def prefect_env(api_url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "PREFECT_API_URL": api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "TRUSTFLOW_PROJECT_DIR": str(PROJECT_DIR),
            "PREFECT_WORKER_QUERY_SECONDS": env.get("PREFECT_WORKER_QUERY_SECONDS", "2"),
        }
    )
    env.update(extra or {})
    return env


def _run(args: list[str], env: dict[str, str], what: str, timeout_s: float) -> str:
    try:
        done = subprocess.run(args, env=env, cwd=PROJECT_DIR, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise ServiceError(f"{what}: no answer within {timeout_s:.0f} s") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise ServiceError(f"{what} failed (exit {done.returncode}): {' | '.join(tail)}")
    return done.stdout


def ensure_work_pool(api_url: str, pool: str = WORK_POOL) -> None:
    """Create the process work pool unless it exists (idempotent)."""
    env = prefect_env(api_url)
    inspect = subprocess.run(
        [_prefect(), "work-pool", "inspect", pool], env=env, cwd=PROJECT_DIR, capture_output=True, text=True, timeout=60
    )
    if inspect.returncode == 0:
        return
    _run([_prefect(), "work-pool", "create", pool, "--type", "process"], env, f"creating work pool {pool}", 60)


def deploy_all(api_url: str, names: list[str] | None = None) -> str:
    """``prefect --no-prompt deploy`` of every deployment in prefect.yaml (or the named ones)."""
    ensure_work_pool(api_url)
    args = [_prefect(), "--no-prompt", "deploy"]
    args += [a for n in names for a in ("--name", n)] if names else ["--all"]
    return _run(args, prefect_env(api_url), "prefect deploy", 300)


@dataclass
class PrefectWorker:
    """A ``prefect worker start --pool trustflow-process`` managed by pid file, like our servers."""

    state_dir: Path
    api_url: str
    pool: str = WORK_POOL
    limit: int | None = None  # flow runs at once (each starts its own local Ray unless a cluster is configured)

    @property
    def process(self) -> ManagedProcess:
        return ManagedProcess("prefect-worker", self.state_dir)

    def up(self, extra_env: dict[str, str] | None = None) -> dict[str, object]:
        if self.process.running_pid() is None:
            ensure_work_pool(self.api_url, self.pool)
            argv = [_prefect(), "worker", "start", "--pool", self.pool, "--type", "process"]
            argv += ["--limit", str(self.limit)] if self.limit else []
            self.process.start(
                argv,
                env=prefect_env(self.api_url, extra_env),
                info={"pool": self.pool, "api_url": self.api_url},
                cwd=PROJECT_DIR,
            )
        return self.status()

    def down(self) -> bool:
        return self.process.stop(timeout_s=30)

    def status(self) -> dict[str, object]:
        pid = self.process.running_pid()
        return {"running": pid is not None, "pid": pid, "pool": self.pool, "api_url": self.api_url}
