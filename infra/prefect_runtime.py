"""Prefect: ephemeral by default, a server when configured; results persisted locally.

Prefect's *default* result storage is pointed, for the duration of a run, at a local
directory: inside the store for a ``file://`` store, ``<home>/prefect-results`` for an S3
store. Results use the JSON serializer: no pickles.

Why not the S3 store itself (as before): when the store goes away, Prefect then retried
persisting the failed task's and flow's results into it for ~45 s before the flow could
report the failure, and a short store restart failed a run that the store layer had ridden
out. Nothing reads these results back (idempotence comes from manifests and keys, tasks use
``NO_CACHE``), so they are kept where they can always be written.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from trustflow.data.store.location import parse_store_url
from trustflow.settings import Settings

RESULTS_DIR = "prefect-results"


def prefect_env(settings: Settings) -> dict[str, str]:
    """Environment for a Prefect process (CLI run, worker, deployment) using ``settings``."""
    env = {
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        # first start of an ephemeral server migrates a fresh SQLite DB: slow on 2 cores
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true",
        "PREFECT_RESULTS_DEFAULT_SERIALIZER": "json",
    }
    if settings.prefect_api_url:
        env["PREFECT_API_URL"] = settings.prefect_api_url
    env["PREFECT_LOCAL_STORAGE_PATH"] = results_dir(settings)
    return env


def results_dir(settings: Settings) -> str:
    """Where Prefect task/flow results go: a local directory, never an S3 bucket (see above)."""
    location = parse_store_url(settings.effective_store_url)
    if location.scheme == "file":
        return f"{location.root}/{RESULTS_DIR}"
    return str(settings.home_dir / RESULTS_DIR)


def trustflow_env(settings: Settings) -> dict[str, str]:
    """``TRUSTFLOW_*`` variables that make ``load_settings()`` inside a flow see ``settings``.

    Flows load their settings from the environment (that is how deployments configure them),
    so an in-process run exports the caller's settings for its duration. Credentials given
    only as ``TRUSTFLOW_S3_*`` are mirrored to ``AWS_*`` for libraries that read only those.
    """
    env = {
        "TRUSTFLOW_HOME": str(settings.home_dir),
        "TRUSTFLOW_STORE_URL": settings.effective_store_url,
        "TRUSTFLOW_S3_REGION": settings.s3_region,
        "TRUSTFLOW_STORE__RETRY_SECONDS": str(settings.store.retry_seconds),
    }
    if settings.s3_endpoint_url:
        env["TRUSTFLOW_S3_ENDPOINT_URL"] = settings.s3_endpoint_url
    if settings.ray_address:
        env["TRUSTFLOW_RAY_ADDRESS"] = settings.ray_address
    if settings.s3_access_key_id and settings.s3_secret_access_key and not os.environ.get("AWS_ACCESS_KEY_ID"):
        env["AWS_ACCESS_KEY_ID"] = settings.s3_access_key_id.get_secret_value()
        env["AWS_SECRET_ACCESS_KEY"] = settings.s3_secret_access_key.get_secret_value()
    return env


@contextlib.contextmanager
def _patched_environ(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


@contextlib.contextmanager
def prefect_runtime(settings: Settings) -> Iterator[None]:
    """Run flows in-process inside this context: trustflow settings + Prefect result storage."""
    import prefect.settings as prefect_settings

    updates: dict = {getattr(prefect_settings, name): value for name, value in prefect_env(settings).items()}
    if not settings.prefect_api_url:
        # Ephemeral runs have no zombie detection to feed; the heartbeat thread's 1 s sleep
        # steps add ~1 s to every flow run (benchmarks/README.md), so it is switched off.
        updates[prefect_settings.PREFECT_FLOWS_HEARTBEAT_FREQUENCY] = None
    with _patched_environ(trustflow_env(settings)), prefect_settings.temporary_settings(updates=updates):
        yield
