"""Prefect: ephemeral by default, a server when configured; results persisted to the store.

Prefect requires result storage blocks to be saved server-side, so instead of per-flow
blocks we point Prefect's *default* result storage at the artifact store for the duration
of a run: a directory inside a ``file://`` store, or a saved ``RemoteFileSystem`` block on
the store's S3 bucket (its settings hold the endpoint only; s3fs takes keys from the
environment). Results use the JSON serializer: no pickles.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from trustflow.data.store.location import parse_store_url
from trustflow.settings import Settings

RESULTS_DIR = "prefect-results"
RESULTS_BLOCK = "trustflow-results"


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
    location = parse_store_url(settings.effective_store_url)
    if location.scheme == "file":
        env["PREFECT_LOCAL_STORAGE_PATH"] = f"{location.root}/{RESULTS_DIR}"
    else:
        env["PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK"] = f"remote-file-system/{RESULTS_BLOCK}"
    return env


def _save_results_block(settings: Settings) -> None:
    from prefect.filesystems import RemoteFileSystem

    client_kwargs: dict[str, str] = {"region_name": settings.s3_region}
    if settings.s3_endpoint_url:
        client_kwargs["endpoint_url"] = settings.s3_endpoint_url
    RemoteFileSystem(
        basepath=f"{settings.effective_store_url}/{RESULTS_DIR}",
        settings={"client_kwargs": client_kwargs},
    ).save(RESULTS_BLOCK, overwrite=True)


def trustflow_env(settings: Settings) -> dict[str, str]:
    """``TRUSTFLOW_*`` variables that make ``load_settings()`` inside a flow see ``settings``.

    Flows load their settings from the environment (that is how deployments configure them),
    so an in-process run exports the caller's settings for its duration. Credentials given
    only as ``TRUSTFLOW_S3_*`` are mirrored to ``AWS_*`` for s3fs (Prefect results).
    """
    env = {
        "TRUSTFLOW_HOME": str(settings.home_dir),
        "TRUSTFLOW_STORE_URL": settings.effective_store_url,
        "TRUSTFLOW_S3_REGION": settings.s3_region,
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
        if parse_store_url(settings.effective_store_url).scheme == "s3":
            _save_results_block(settings)
        yield
