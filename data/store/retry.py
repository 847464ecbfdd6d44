"""One retry policy for every S3 operation of the artifact store.

Why one place: a store restart (SeaweedFS takes 4-10 s) must not kill a flow, yet a store
that is really gone must be reported promptly, once, as one line naming the endpoint, the
stage and the operation. Every S3 call of ``ArtifactStore`` (part and manifest writes,
reads, listings) and the start-up ``head_bucket`` probe go through :func:`call_with_retry`.

* Only transient failures are retried (:func:`is_transient`): connection refused/reset,
  timeouts, HTTP 5xx, 503 SlowDown/throttling. A 4xx (NoSuchKey, AccessDenied, a missing
  bucket) is an answer, not an outage, and is raised at once; ``FileNotFoundError`` (how
  pyarrow reports a missing key) is never retried.
* Backoff is exponential with jitter (each delay drawn from [d/2, d], d doubling from
  ``base_delay_s`` up to ``max_delay_s``), bounded by a total time budget
  (``store.retry_seconds``, default 30 s): after that the operation fails with
  :class:`~trustflow.errors.StoreUnavailable`. A budget of 0 disables retries.
* Every retry logs one WARNING line on the ``trustflow.store`` logger.

Retrying is safe because every write goes to a deterministic key and an S3 object appears
only when its upload completes: a retried part or manifest overwrites the same object, so it
never publishes twice (see ``ArtifactStore.write_atomic``).
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from trustflow.errors import StoreUnavailable

log = logging.getLogger("trustflow.store")
T = TypeVar("T")

DEFAULT_RETRY_SECONDS = 30.0

# pyarrow reports S3 failures as OSError("... AWS Error <CODE> during <Op> operation: ...")
_ARROW_TRANSIENT = re.compile(
    r"AWS Error (NETWORK_CONNECTION|SLOW_DOWN|SERVICE_UNAVAILABLE|INTERNAL_FAILURE|REQUEST_TIMEOUT|"
    r"REQUEST_TIME_TOO_SKEWED|THROTTLING|REQUEST_EXPIRED)"
    r"|HTTP status 5\d\d|HTTP response code:? *5\d\d|curlCode: (6|7|18|28|52|55|56)\b"
    r"|Connection reset|Connection refused|timed out|Broken pipe",
    re.IGNORECASE,
)
_S3_TRANSIENT_CODES = {
    "SlowDown",
    "ServiceUnavailable",
    "InternalError",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "Throttling",
    "ThrottlingException",
    "503",
    "500",
    "502",
    "504",
}


def is_transient(exc: BaseException) -> bool:
    """True for failures a short wait can cure (the store restarting, overloaded, a network blip)."""
    if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError | NotADirectoryError):
        return False
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    try:
        from botocore.exceptions import (
            ClientError,
            ConnectionClosedError,
            ConnectTimeoutError,
            EndpointConnectionError,
            HTTPClientError,
            ReadTimeoutError,
        )
    except ImportError:  # pragma: no cover - boto3 is a dependency
        pass
    else:
        if isinstance(
            exc,
            EndpointConnectionError | ConnectionClosedError | ConnectTimeoutError | ReadTimeoutError | HTTPClientError,
        ):
            return True
        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            return code in _S3_TRANSIENT_CODES or int(status) >= 500
    if isinstance(exc, OSError):
        return bool(_ARROW_TRANSIENT.search(str(exc)))
    return False


def short_cause(exc: BaseException, limit: int = 240) -> str:
    """The failure as one short line (pyarrow's S3 messages are long; never a traceback)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class RetryPolicy:
    """How long and how often to retry one store operation; ``budget_s=0`` means never."""

    budget_s: float = DEFAULT_RETRY_SECONDS
    base_delay_s: float = 0.5
    max_delay_s: float = 5.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def delay(self, attempt: int) -> float:
        """Jittered delay before retry number ``attempt`` (1-based): uniform in [d/2, d]."""
        d = min(self.max_delay_s, self.base_delay_s * (2 ** (attempt - 1)))
        return self.rng.uniform(d / 2, d)


def call_with_retry(
    fn: Callable[[], T],
    *,
    operation: str,
    endpoint: str,
    stage: str | None = None,
    policy: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """``fn()``, retried on transient failures until ``policy.budget_s`` is spent.

    Non-transient errors propagate unchanged. When the budget is spent the last transient
    error becomes one :class:`StoreUnavailable` naming ``endpoint``, ``stage`` and
    ``operation`` (the original stays chained as ``__cause__`` for the run log).
    """
    policy = policy or RetryPolicy()
    start = clock()
    attempt = 0
    while True:
        try:
            return fn()
        except Exception as exc:
            if not is_transient(exc):
                raise
            attempt += 1
            remaining = policy.budget_s - (clock() - start)
            if remaining <= 0:
                raise StoreUnavailable.for_operation(
                    endpoint=endpoint,
                    stage=stage,
                    operation=operation,
                    waited_s=clock() - start,
                    attempts=attempt,
                    cause=short_cause(exc),
                ) from exc
            wait = min(policy.delay(attempt), remaining)
            log.warning(
                "store %s unavailable during %s%s (%s); retry %d in %.1f s (gives up %.0f s after the first failure)",
                endpoint,
                operation,
                f" of stage {stage}" if stage else "",
                short_cause(exc, 120),
                attempt,
                wait,
                policy.budget_s,
            )
            sleep(wait)
