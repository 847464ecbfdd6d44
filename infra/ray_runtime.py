"""Ray: a local cluster by default, or an existing one by address.

Workers rebuild what they need (the artifact store) from plain settings; secrets reach
local workers by environment inheritance and remote ones through the nodes' own
environment or instance role, never through task arguments or the runtime env.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from trustflow.settings import Settings

_PROJECT_ROOT = Path(__file__).resolve().parent.parent
_EXCLUDES = [".venv", ".trustflow", ".git", "tests", "benchmarks", "docs", "**/__pycache__"]


def ensure_ray(settings: Settings) -> None:
    """Initialise Ray once per process (no-op when already connected)."""
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
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
        ray.init(address=settings.ray_address, runtime_env=runtime_env, log_to_driver=True)
    else:
        ray.init(
            num_cpus=settings.ray_num_cpus or os.cpu_count() or 1,
            include_dashboard=False,
            runtime_env=runtime_env,
            log_to_driver=True,
            configure_logging=True,
            logging_level=logging.WARNING,
        )


def shutdown_ray() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()
