"""One exception family so the CLI can turn any expected failure into one clear line."""

from __future__ import annotations


class TrustflowError(Exception):
    """An expected failure with a message meant for the user (names the file/field/option)."""


class ConfigError(TrustflowError):
    """The configuration (env vars, YAML file, CLI option) is invalid."""


class StoreError(TrustflowError):
    """The artifact store cannot be reached or holds something unexpected."""


class StageNotFound(StoreError):
    """A stage has no manifest: it was never written, or its writer has not finished."""


class InputError(TrustflowError):
    """A source to ingest is malformed; the message names the file and, where known, the line."""


class ServiceError(TrustflowError):
    """A managed service (SeaweedFS, Prefect server, Ray) failed to start, stop or answer."""
