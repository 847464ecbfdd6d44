"""One exception family so the CLI can turn any expected failure into one clear line."""

from __future__ import annotations


class TrustflowError(Exception):
    """An expected failure with a message meant for the user (names the file/field/option)."""


class ConfigError(TrustflowError):
    """The configuration (env vars, YAML file, CLI option) is invalid."""


class StoreError(TrustflowError):
    """The artifact store cannot be reached or holds something unexpected."""


class StoreUnavailable(StoreError):
    """The store did not answer (connection refused, timeouts, 5xx) for longer than the retry budget.

    Raised inside Ray workers as well as in the driver, so it must survive pickling: the
    message is its only constructor argument and the details travel as pickled state.
    """

    def __init__(self, message: str, endpoint: str = "", stage: str | None = None, operation: str = "") -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.stage = stage
        self.operation = operation

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (str(self), self.endpoint, self.stage, self.operation))

    @classmethod
    def for_operation(
        cls, *, endpoint: str, stage: str | None, operation: str, waited_s: float, attempts: int, cause: str
    ) -> StoreUnavailable:
        where = f" of stage {stage}" if stage else ""
        retried = f"gave up after {waited_s:.0f} s and {attempts} attempts" if attempts > 1 else "no retries"
        return cls(
            f"store {endpoint} unavailable during {operation}{where} ({retried}; store.retry_seconds): {cause}; "
            "re-run once it is back: finished parts are kept and reused",
            endpoint,
            stage,
            operation,
        )


class StageNotFound(StoreError):
    """A stage has no manifest: it was never written, or its writer has not finished."""


class InputError(TrustflowError):
    """A source to ingest is malformed; the message names the file and, where known, the line."""


class ServiceError(TrustflowError):
    """A managed service (SeaweedFS, Prefect server, Ray) failed to start, stop or answer."""
