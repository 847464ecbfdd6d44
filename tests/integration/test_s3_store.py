"""The artifact store against a real SeaweedFS S3 server (never a mock)."""

from __future__ import annotations

import time

import pyarrow as pa
import pytest

from trustflow.data.schemas import DATASET_SUMMARY
from trustflow.data.store import ArtifactStore, StageRef
from trustflow.errors import StoreError
from trustflow.infra.processes import free_port
from trustflow.settings import load_settings

pytestmark = pytest.mark.integration


def summary_rows(names: list[str]) -> pa.Table:
    n = len(names)
    return pa.table({"table": names, "rows": list(range(n)), "schema_name": ["s"] * n, "schema_version": [1] * n})


def test_write_read_list_through_s3(s3_settings) -> None:  # noqa: ANN001
    store = ArtifactStore(settings=s3_settings)
    ref = StageRef("s3flow", "run-a", "summary")
    w = store.writer(ref, DATASET_SUMMARY, ["table"])
    w.write_part(summary_rows(["a", "b"]))
    assert store.manifest(ref) is None  # parts alone are invisible on S3 too
    w.write_part(w.missing(summary_rows(["a", "b", "c"])))
    manifest = w.commit({"where": "seaweedfs"})
    assert manifest.rows == 3 and len(manifest.parts) == 2
    assert sorted(store.read_table(ref)["table"].to_pylist()) == ["a", "b", "c"]
    assert [str(r) for r, _ in store.list_stages()] == ["s3flow/run-a/summary"]
    again = ArtifactStore(settings=s3_settings).write_stage(ref, DATASET_SUMMARY, summary_rows(["c", "d"]), ["table"])
    assert again.rows == 4


def test_unreachable_endpoint_is_one_clear_error(s3_settings) -> None:  # noqa: ANN001
    dead = f"http://127.0.0.1:{free_port()}"
    # store.retry_seconds bounds how long a dead endpoint is retried (default 30 s)
    settings = load_settings(store_url=s3_settings.store_url, s3_endpoint_url=dead, store={"retry_seconds": 1})
    started = time.monotonic()
    with pytest.raises(StoreError, match=f"cannot reach S3 endpoint {dead}"):
        ArtifactStore(settings=settings)
    assert time.monotonic() - started < 10


def test_wrong_credentials_are_named_and_data_survives(s3_settings) -> None:  # noqa: ANN001
    good = ArtifactStore(settings=s3_settings)
    ref = StageRef("s3flow", "keep", "summary")
    good.write_stage(ref, DATASET_SUMMARY, summary_rows(["x"]), ["table"])
    bad = load_settings(
        store_url=s3_settings.store_url,
        s3_endpoint_url=s3_settings.s3_endpoint_url,
        s3_access_key_id=s3_settings.s3_access_key_id.get_secret_value(),
        s3_secret_access_key="definitely-wrong",
    )
    with pytest.raises(StoreError, match="rejected the credentials"):
        ArtifactStore(settings=bad)
    assert good.read_table(ref)["table"].to_pylist() == ["x"]


def test_missing_bucket_is_named(seaweedfs) -> None:  # noqa: ANN001
    settings = load_settings(store_url="s3://no-such-bucket-here", s3_endpoint_url=seaweedfs.endpoint_url)
    with pytest.raises(StoreError, match="bucket 'no-such-bucket-here' does not exist"):
        ArtifactStore(settings=settings)


def test_failed_part_write_publishes_nothing(s3_settings) -> None:  # noqa: ANN001
    store = ArtifactStore(settings=s3_settings)
    path = store.path("runs", "s3flow", "torn", "summary", "parts", "part-x.parquet")

    def produce(out) -> None:  # noqa: ANN001
        out.write(b"PAR1" + b"\0" * 100_000)
        raise RuntimeError("writer died mid-part")

    with pytest.raises(RuntimeError):
        store.write_atomic(path, produce)
    assert not store._exists(path)


def test_unreadable_part_is_named_at_commit(s3_settings) -> None:  # noqa: ANN001
    store = ArtifactStore(settings=s3_settings)
    ref = StageRef("s3flow", "corrupt", "summary")
    store.write_bytes_atomic(store.path(ref.relpath, "parts", "part-bad.parquet"), b"not parquet at all")
    with pytest.raises(StoreError, match="part part-bad.parquet is unreadable"):
        store.writer(ref, DATASET_SUMMARY, ["table"]).commit()


@pytest.mark.parametrize(
    "key", ["../neighbour/secret.txt", "a/../../neighbour/secret.txt", "/neighbour/secret.txt", "a//b"]
)
def test_keys_cannot_leave_the_store_prefix(s3_settings, seaweedfs, key: str) -> None:  # noqa: ANN001
    """Another prefix of the same bucket (another team's store) is out of reach of any key."""
    from trustflow.data.store.location import s3_client
    from trustflow.errors import InputError

    bucket = seaweedfs.config.bucket
    neighbour = f"{s3_settings.store_url.removeprefix(f's3://{bucket}/')}-neighbour"
    s3 = s3_client(s3_settings)
    s3.put_object(Bucket=bucket, Key=f"{neighbour}/secret.txt", Body=b"canary")
    store = ArtifactStore(f"s3://{bucket}/{neighbour.removesuffix('-neighbour')}", s3_settings)
    hostile = key.replace("neighbour", neighbour.rsplit("/", 1)[-1])
    with pytest.raises(InputError, match="store key") as err:
        store.read_bytes(store.path(hostile))
    assert repr(hostile) in str(err.value)
    with pytest.raises(InputError, match="store key"):
        store.write_bytes_atomic(store.path(hostile), b"overwritten")
    assert s3.get_object(Bucket=bucket, Key=f"{neighbour}/secret.txt")["Body"].read() == b"canary"
