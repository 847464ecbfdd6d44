"""Ray: a local cluster by default, or an existing one by address.

Workers rebuild what they need (the artifact store) from plain settings; secrets reach
local workers by environment inheritance and remote ones through the nodes' own
environment or instance role, never through task arguments or the runtime env.

The local cluster is private to this machine's user:

* **Loopback only.** On Linux Ray takes the machine's outward address as the node IP and
  binds its GCS, raylet, object manager, worker and dashboard-agent servers on ``*`` /
  ``0.0.0.0`` (and the runtime-env agent on the outward IP). ``ray.init(_node_ip_address=
  "127.0.0.1")`` does not help: Ray 2.60 rewrites a loopback node IP to the outward one. It
  keeps loopback only when ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (its single-machine mode,
  the default on macOS/Windows); then every Ray server, the driver's own included, listens on
  127.0.0.1. That flag is read when Ray is imported, so it is set before ``import ray`` and,
  for a Ray imported earlier, applied to the loaded module too. After start-up the node IP is
  checked; a local Ray that is not on loopback is shut down and reported, never used.
* **Token authentication.** Loopback stops other machines, not other local users or
  processes: without authentication anything that reaches 127.0.0.1 can submit tasks, i.e.
  run code as us. ``RAY_AUTH_MODE=token`` with the token in ``<home>/secrets/ray-auth-token``
  (0600, created once) closes that; Ray's processes read the token file named by
  ``RAY_AUTH_TOKEN_PATH``, so the token is never in an environment variable, argument or log,
  and nothing is written to ``~/.ray``. A ``RAY_AUTH_TOKEN``/``RAY_AUTH_TOKEN_PATH`` already
  in the environment is used instead. ``RAY_AUTH_MODE=disabled`` is overridden for the local
  cluster: nothing in trustflow needs an open one.

Joining a cluster (``ray_address``) changes none of this: binding and authentication are
that cluster's, and ``RAY_AUTH_MODE``/``RAY_AUTH_TOKEN*`` are passed through as set. A
loopback ``ray_address`` (a multi-node cluster on this machine, ``infra/ray_nodes.py``) is
joined in single-machine mode, as its nodes run.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import sys
from pathlib import Path

from trustflow.errors import ServiceError
from trustflow.infra.local_credentials import ensure_ray_token
from trustflow.settings import Settings

_PROJECT_ROOT = Path(__file__).resolve().parent.parent
_EXCLUDES = [".venv", ".trustflow", ".git", "tests", "benchmarks", "docs", "**/__pycache__"]
LOOPBACK = "127.0.0.1"


def ensure_ray(settings: Settings) -> None:
    """Initialise Ray once per process (no-op when already connected)."""
    loaded = sys.modules.get("ray")
    if loaded is not None and loaded.is_initialized():
        return
    local = not settings.ray_address
    if local:
        _local_cluster_environment(settings.home_dir)
    elif settings.ray_address and _is_loopback_address(settings.ray_address):
        # a cluster on this machine (infra/ray_nodes.py): join it in single-machine mode, or Ray
        # rewrites 127.0.0.1 to the outward address, where nothing listens
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    env_vars = {
        # workers log to the driver's terminal: keep model-loading progress bars out of it
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "TQDM_DISABLE": "1",
        "TRANSFORMERS_VERBOSITY": "error",
        "TRUSTFLOW_HOME": str(settings.home_dir),
        "TRUSTFLOW_S3_REGION": settings.s3_region,
    }
    if settings.s3_endpoint_url:
        env_vars["TRUSTFLOW_S3_ENDPOINT_URL"] = settings.s3_endpoint_url
    runtime_env: dict = {"env_vars": env_vars}
    if settings.ray_address:
        import trustflow

        runtime_env["py_modules"] = [trustflow]
        runtime_env["excludes"] = _EXCLUDES
        if _is_loopback_address(settings.ray_address):
            _apply_to_loaded_ray()
        ray.init(address=settings.ray_address, runtime_env=runtime_env, log_to_driver=True)
        return
    _apply_to_loaded_ray()
    ray.init(
        num_cpus=settings.ray_num_cpus or os.cpu_count() or 1,
        include_dashboard=False,
        dashboard_host=LOOPBACK,
        runtime_env=runtime_env,
        log_to_driver=True,
        configure_logging=True,
        logging_level=logging.WARNING,
    )
    _check_local_cluster()


def _is_loopback_address(address: str) -> bool:
    """``127.0.0.1:6379``, ``localhost:6379`` or ``ray://127.0.0.1:10001``: a cluster on this machine."""
    host = address.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _local_cluster_environment(home: Path) -> None:
    """Environment of a private local Ray (inherited by every Ray process it starts)."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # node IP 127.0.0.1: see the module docstring
    os.environ["RAY_AUTH_MODE"] = "token"
    if not (os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")):
        os.environ["RAY_AUTH_TOKEN_PATH"] = str(ensure_ray_token(home))


def _apply_to_loaded_ray() -> None:
    """Make an already imported Ray see the environment above, as Ray itself does when it
    turns token auth on: its constants and its cached C++ config are read at import."""
    from ray._private import ray_constants
    from ray._raylet import Config  # type: ignore[attr-defined]

    ray_constants.ENABLE_RAY_CLUSTER = False
    Config.initialize("")


def _check_local_cluster() -> None:
    """Fail closed: a local Ray that is not on loopback, or not authenticated, is stopped."""
    import ray
    from ray._private.authentication.authentication_utils import is_token_auth_enabled

    node_ip = ray.util.get_node_ip_address()
    problems = []
    if not ipaddress.ip_address(node_ip).is_loopback:
        problems.append(f"it took node IP {node_ip} instead of {LOOPBACK}")
    if not is_token_auth_enabled():
        problems.append("token authentication is off")
    if problems:
        ray.shutdown()
        raise ServiceError(f"refusing the local Ray cluster: {'; '.join(problems)}")


def shutdown_ray() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()
