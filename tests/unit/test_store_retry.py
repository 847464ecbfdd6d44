"""The store's retry policy: what is retried, for how long, and how the failure reads."""

from __future__ import annotations

import logging
import pickle
import random

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from trustflow.data.store.retry import RetryPolicy, call_with_retry, is_transient
from trustflow.errors import ConfigError, StoreError, StoreUnavailable, TrustflowError
from trustflow.settings import load_settings

REFUSED = OSError(
    "When initiating multiple part upload for key 'x/runs/f/r/s/parts/part-1.parquet' in bucket 'tf': "
    "AWS Error NETWORK_CONNECTION during CreateMultipartUpload operation: curlCode: 7, Could not connect to server"
)


def client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")


@pytest.mark.parametrize(
    "exc",
    [
        REFUSED,
        OSError("AWS Error SLOW_DOWN during PutObject operation: Please reduce your request rate."),
        OSError("AWS Error UNKNOWN (HTTP status 503) during HeadObject operation: No response body."),
        OSError("AWS Error INTERNAL_FAILURE during ListObjectsV2 operation"),
        ConnectionResetError("Connection reset by peer"),
        TimeoutError("timed out"),
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
        client_error("SlowDown", 503),
        client_error("InternalError", 500),
    ],
)
def test_outages_are_transient(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        FileNotFoundError("Path does not exist 'tf/x/_manifest.json'"),
        OSError("AWS Error ACCESS_DENIED during PutObject operation: Access Denied"),
        OSError("AWS Error NO_SUCH_BUCKET during HeadBucket operation"),
        client_error("NoSuchKey", 404),
        client_error("AccessDenied", 403),
        ValueError("not a store failure"),
        StoreError("a store answer, not an outage"),
    ],
)
def test_answers_are_not_retried(exc: BaseException) -> None:
    assert not is_transient(exc)


class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def failing(times: int, exc: BaseException, result: str = "ok"):  # noqa: ANN201
    calls = {"n": 0}

    def fn() -> str:
        calls["n"] += 1
        if calls["n"] <= times:
            raise exc
        return result

    return fn, calls


def test_outage_shorter_than_budget_is_ridden_out_with_a_log_line_per_retry(caplog) -> None:  # noqa: ANN001
    t = FakeTime()
    fn, calls = failing(3, REFUSED)
    policy = RetryPolicy(budget_s=30, rng=random.Random(1))
    with caplog.at_level(logging.WARNING, logger="trustflow.store"):
        out = call_with_retry(
            fn,
            operation="write of part-1.parquet",
            endpoint="http://s3",
            stage="f/r/s",
            policy=policy,
            sleep=t.sleep,
            clock=t.clock,
        )
    assert out == "ok" and calls["n"] == 4
    retries = [r.getMessage() for r in caplog.records if r.name == "trustflow.store"]
    assert len(retries) == 3
    assert all("http://s3" in m and "write of part-1.parquet" in m and "f/r/s" in m for m in retries)
    assert "retry 1 in" in retries[0] and "retry 3 in" in retries[2]


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(budget_s=1000, base_delay_s=0.5, max_delay_s=5.0, rng=random.Random(7))
    for attempt, nominal in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 5.0), (9, 5.0)]:
        draws = {policy.delay(attempt) for _ in range(20)}
        assert all(nominal / 2 <= d <= nominal for d in draws)
        assert len(draws) > 1  # jittered: concurrent writers do not retry in lockstep


def test_spent_budget_raises_one_store_error_naming_endpoint_stage_operation() -> None:
    t = FakeTime()
    fn, calls = failing(10_000, REFUSED)
    with pytest.raises(StoreUnavailable) as info:
        call_with_retry(
            fn,
            operation="write of part-1.parquet",
            endpoint="http://127.0.0.1:8333 (s3://tf/x)",
            stage="ingest/abc/prompts",
            policy=RetryPolicy(budget_s=30, rng=random.Random(2)),
            sleep=t.sleep,
            clock=t.clock,
        )
    err = info.value
    message = str(err)
    assert "\n" not in message
    assert "http://127.0.0.1:8333" in message and "ingest/abc/prompts" in message
    assert "write of part-1.parquet" in message and "NETWORK_CONNECTION" in message
    assert isinstance(err, StoreError) and err.__cause__ is REFUSED
    assert 29.9 <= t.now <= 30.0 + 1e-9  # retried for the whole budget, not longer
    assert calls["n"] == len(t.sleeps) + 1 >= 6


def test_zero_budget_fails_at_once() -> None:
    t = FakeTime()
    fn, calls = failing(1, REFUSED)
    with pytest.raises(StoreUnavailable, match="no retries"):
        call_with_retry(
            fn, operation="read", endpoint="e", policy=RetryPolicy(budget_s=0), sleep=t.sleep, clock=t.clock
        )
    assert calls["n"] == 1 and t.sleeps == []


def test_non_transient_error_is_raised_unchanged_without_retry() -> None:
    t = FakeTime()
    missing = FileNotFoundError("no such key")
    fn, calls = failing(1, missing)
    with pytest.raises(FileNotFoundError) as info:
        call_with_retry(fn, operation="read", endpoint="e", policy=RetryPolicy(), sleep=t.sleep, clock=t.clock)
    assert info.value is missing and calls["n"] == 1 and t.sleeps == []


def test_store_unavailable_survives_pickling() -> None:
    """It is raised inside Ray workers and must reach the driver whole."""
    err = StoreUnavailable("store e unavailable", "e", "f/r/s", "write of p")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is StoreUnavailable and str(back) == str(err)
    assert (back.endpoint, back.stage, back.operation) == ("e", "f/r/s", "write of p")


def test_retry_seconds_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().store.retry_seconds == 30.0
    monkeypatch.setenv("TRUSTFLOW_STORE__RETRY_SECONDS", "4.5")
    assert load_settings().store.retry_seconds == 4.5
    with pytest.raises(ConfigError, match="store.retry_seconds"):
        load_settings(store={"retry_seconds": -1})
    with pytest.raises(ConfigError, match="store"):
        load_settings(store={"retry_secs": 1})


def test_local_store_never_retries(tmp_path) -> None:  # noqa: ANN001
    from trustflow.data.store import ArtifactStore

    store = ArtifactStore(f"file://{tmp_path}", load_settings(store={"retry_seconds": 30}))
    fn, calls = failing(1, REFUSED)
    with pytest.raises(OSError):
        store.io("read", fn)
    assert calls["n"] == 1


def test_ray_store_failure_becomes_the_store_error() -> None:
    """A RayTaskError carrying an S3 outage surfaces as StoreUnavailable, not a Ray traceback."""
    from trustflow.tasks.ray_parts import reraise_task_error

    class FakeRayTaskError(Exception):
        def __init__(self, cause: BaseException) -> None:
            super().__init__("ray::_build_and_write() ... 300 lines")
            self.cause = cause

    with pytest.raises(StoreUnavailable, match="ingest/d/prompts.*NETWORK_CONNECTION"):
        reraise_task_error(FakeRayTaskError(REFUSED), "ingest/d/prompts")
    inner = StoreUnavailable("store e unavailable during write", "e", "s", "write")
    with pytest.raises(StoreUnavailable) as info:
        reraise_task_error(FakeRayTaskError(inner))
    assert info.value is inner
    other = FakeRayTaskError(ValueError("a bug"))
    with pytest.raises(FakeRayTaskError):
        reraise_task_error(other)
    assert issubclass(StoreUnavailable, TrustflowError)


def test_store_spec_carries_the_retry_budget() -> None:
    from trustflow.data.store import ArtifactStore
    from trustflow.tasks.ray_parts import StoreSpec

    store = ArtifactStore("file:///tmp/tf-spec-test", load_settings(store={"retry_seconds": 3}))
    spec = StoreSpec.of(store)
    assert spec.retry_seconds == 3
    assert spec.open().settings.store.retry_seconds == 3


def test_prefect_results_stay_local_for_an_s3_store(tmp_path) -> None:  # noqa: ANN001
    """Results written into a dead store held failures up for ~45 s: they go to a local directory."""
    from trustflow.infra.prefect_runtime import prefect_env

    settings = load_settings(home=tmp_path / "home", store_url="s3://tf/x", s3_endpoint_url="http://127.0.0.1:1")
    env = prefect_env(settings)
    assert env["PREFECT_LOCAL_STORAGE_PATH"] == str((tmp_path / "home").resolve() / "prefect-results")
    assert "PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK" not in env
