"""The storage-event relay against real services: SeaweedFS (the session's), a Prefect server
on 127.0.0.1 started here, and the relay as its own process, as users run it.

Checks what the issue asks for: a PUT shows up as one ``trustflow.object.created`` event with
the S3 HEAD etag; the same bytes again announce nothing; new bytes announce a new etag; a
delete announces ``trustflow.object.deleted``; objects written while the relay is down are
announced exactly once when it comes back.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from trustflow.infra.processes import free_port

pytestmark = pytest.mark.integration

RELAY = [sys.executable, "-c", "from trustflow.cli.events import events_app; events_app()", "relay"]


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory: pytest.TempPathFactory):
    """A Prefect server of this module's own; events are persisted every 0.5 s (default 5 s)."""
    from trustflow.errors import ServiceError
    from trustflow.infra.prefect_server import PrefectServer

    name = "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL"
    before = os.environ.get(name)
    os.environ[name] = "0.5"
    try:
        for attempt in range(3):  # a free port can be taken by another service while the server starts
            server = PrefectServer(tmp_path_factory.mktemp("relay-prefect"), free_port())
            try:
                server.up(timeout_s=120)
                break
            except ServiceError:
                server.down()
                if attempt == 2:
                    raise
    finally:
        os.environ.pop(name) if before is None else os.environ.__setitem__(name, before)
    try:
        yield server.api_url
    finally:
        server.down()


def relay_env(seaweedfs: Any, api_url: str, home: Path) -> dict[str, str]:
    return dict(
        os.environ,
        TRUSTFLOW_HOME=str(home),
        TRUSTFLOW_STORE_URL=f"s3://{seaweedfs.config.bucket}",
        TRUSTFLOW_S3_ENDPOINT_URL=seaweedfs.endpoint_url,
        TRUSTFLOW_SEAWEEDFS__FILER_PORT=str(seaweedfs.config.filer_port),
        TRUSTFLOW_SEAWEEDFS__BUCKET=seaweedfs.config.bucket,
        PREFECT_API_URL=api_url,
    )


def object_events(api_url: str, id_prefix: str) -> list[Any]:
    """Every trustflow.object.* event on the server whose resource id starts with ``id_prefix``."""
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.events.filters import EventFilter, EventNameFilter, EventOrder, EventResourceFilter

    flt = EventFilter(
        event=EventNameFilter(prefix=["trustflow.object."]),
        resource=EventResourceFilter(id_prefix=[id_prefix]),
        order=EventOrder.ASC,
    )
    with SyncPrefectClient(api_url) as client:
        page = client.read_events(flt, limit=50)
        events = list(page.events)
        while page.next_page:
            page = client.read_events_page(str(page.next_page))
            events.extend(page.events)
    return events


def wait_for(what: str, check: Callable[[], Any], timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:.0f}s: {what}")
        time.sleep(0.2)


def summary(events: list[Any]) -> list[tuple[str, str, str]]:
    return [(e.event.rsplit(".", 1)[1], e.resource["trustflow.key"], e.resource["trustflow.etag"]) for e in events]


def test_seaweedfs_relay_announces_each_change_once(seaweedfs: Any, prefect_api: str, tmp_path: Path) -> None:
    from trustflow.data.store.location import s3_client
    from trustflow.settings import load_settings

    s3 = s3_client(load_settings(s3_endpoint_url=seaweedfs.endpoint_url))
    bucket = seaweedfs.config.bucket
    prefix = f"relay-{uuid.uuid4().hex[:8]}/"
    ids = f"s3://{bucket}/{prefix}"
    env = relay_env(seaweedfs, prefect_api, tmp_path / "home")
    args = [*RELAY, "--prefix", prefix, "--state-dir", str(tmp_path / "state"), "--stats-every", "1"]

    def head_etag(key: str) -> str:
        return s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')

    def events_of(key: str, kind: str = "created") -> list[Any]:
        return [
            e for e in object_events(prefect_api, ids) if e.resource["trustflow.key"] == key and e.event.endswith(kind)
        ]

    relay = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        key = f"{prefix}incoming/a.jsonl"
        s3.put_object(Bucket=bucket, Key=key, Body=b'{"v": 1}\n')
        (first,) = wait_for("created event of a new object", lambda: events_of(key))
        assert first.resource.id == f"s3://{bucket}/{key}"
        assert first.resource["trustflow.etag"] == head_etag(key) == hashlib.md5(b'{"v": 1}\n').hexdigest()
        assert first.payload["size"] == 9

        # the same bytes again: nothing; a later object proves the re-upload was processed
        s3.put_object(Bucket=bucket, Key=key, Body=b'{"v": 1}\n')
        s3.put_object(Bucket=bucket, Key=f"{prefix}barrier", Body=b"b")
        wait_for("barrier object announced", lambda: events_of(f"{prefix}barrier"))
        time.sleep(0.6)  # one persister flush
        assert len(events_of(key)) == 1, "re-uploading the same bytes must not announce again"

        s3.put_object(Bucket=bucket, Key=key, Body=b'{"v": 2}\n')
        _, second = wait_for(
            "created event for new bytes", lambda: (lambda ev: ev if len(ev) == 2 else None)(events_of(key))
        )
        assert second.resource["trustflow.etag"] == head_etag(key) != first.resource["trustflow.etag"]

        big = f"{prefix}models/ckpt.bin"
        upload = s3.create_multipart_upload(Bucket=bucket, Key=big)["UploadId"]
        parts = [
            {
                "PartNumber": n,
                "ETag": s3.upload_part(Bucket=bucket, Key=big, UploadId=upload, PartNumber=n, Body=body)["ETag"],
            }
            for n, body in ((1, b"x" * (5 << 20)), (2, b"y" * 100))
        ]
        s3.complete_multipart_upload(Bucket=bucket, Key=big, UploadId=upload, MultipartUpload={"Parts": parts})
        (multi,) = wait_for("multipart object announced", lambda: events_of(big))
        assert multi.resource["trustflow.etag"] == head_etag(big) and head_etag(big).endswith("-2")

        s3.delete_object(Bucket=bucket, Key=key)
        (gone,) = wait_for("deleted event", lambda: events_of(key, "deleted"))
        assert gone.resource["trustflow.etag"] == second.resource["trustflow.etag"]
    finally:
        relay.send_signal(signal.SIGTERM)
        out, err = relay.communicate(timeout=30)
    assert relay.returncode == 0, err[-2000:]
    stats = json.loads(out[out.index("{") :])
    assert (stats["created"], stats["deleted"]) == (4, 1), stats
    assert not any(f"s3://{bucket}/{prefix}" in line for line in err.splitlines()), "no per-object log lines"
    before = summary(object_events(prefect_api, ids))
    assert not any(k.startswith(f"{prefix}.uploads") for _, k, _ in before), "multipart parts are not objects"

    # down: five new objects; back up: exactly those five, nothing else
    written = {f"{prefix}incoming/down-{i}.jsonl": hashlib.md5(b"%d" % i).hexdigest() for i in range(5)}
    for i, k in enumerate(written):
        s3.put_object(Bucket=bucket, Key=k, Body=b"%d" % i)
    again = subprocess.run([*args, "--once"], env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-2000:]
    stats = json.loads(again.stdout[again.stdout.index("{") :])
    assert (stats["created"], stats["deleted"]) == (5, 0), stats
    wait_for("the five catch-up events", lambda: len(object_events(prefect_api, ids)) >= len(before) + 5)
    time.sleep(0.6)
    after = summary(object_events(prefect_api, ids))
    assert after[: len(before)] == before
    assert sorted(after[len(before) :]) == sorted(("created", k, etag) for k, etag in written.items())


def test_local_store_relay_once(prefect_api: str, tmp_path: Path) -> None:
    """file:// stores: resource ids name the file; the etag is the MD5 of its bytes."""
    root = tmp_path / "store"
    (root / "models").mkdir(parents=True)
    (root / "models" / "card.yaml").write_text("name: tiny\n")
    (root / "models" / ".tmp-1234").write_text("half")  # an atomic write in progress
    (root / "runs" / "x" / "parts").mkdir(parents=True)
    (root / "runs" / "x" / "parts" / "part-1.parquet.tmp").write_text("p")
    env = dict(
        os.environ,
        TRUSTFLOW_HOME=str(tmp_path / "home"),
        TRUSTFLOW_STORE_URL=f"file://{root}",
        PREFECT_API_URL=prefect_api,
    )
    args = [
        *RELAY,
        "--source",
        "local",
        "--once",
        "--exclude",
        "**/parts/*.tmp",
        "--state-dir",
        str(tmp_path / "state"),
    ]
    run = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout[run.stdout.index("{") :])["created"] == 1
    (event,) = wait_for("local object announced", lambda: object_events(prefect_api, f"file://{root}/"))
    assert event.resource.id == f"file://{root}/models/card.yaml"
    assert event.resource["trustflow.etag"] == hashlib.md5(b"name: tiny\n").hexdigest()


def test_relay_killed_mid_stream_loses_nothing_and_stores_nothing_twice(
    seaweedfs: Any, prefect_api: str, tmp_path: Path
) -> None:
    """SIGKILL between emit and record re-emits on restart; the event ids make those no-ops."""
    from concurrent.futures import ThreadPoolExecutor

    from trustflow.data.store.location import s3_client
    from trustflow.settings import load_settings

    s3 = s3_client(load_settings(s3_endpoint_url=seaweedfs.endpoint_url))
    bucket, prefix = seaweedfs.config.bucket, f"kill-{uuid.uuid4().hex[:8]}/"
    ids = f"s3://{bucket}/{prefix}"
    env = relay_env(seaweedfs, prefect_api, tmp_path / "home")
    args = [*RELAY, "--prefix", prefix, "--state-dir", str(tmp_path / "state"), "--batch-size", "20"]
    keys = [f"{prefix}o{i:04d}" for i in range(300)]
    relay = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=k.encode()), keys[:150]))
            wait_for("the relay started announcing", lambda: object_events(prefect_api, ids))
            relay.kill()
            list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=k.encode()), keys[150:]))
    finally:
        relay.kill()
        relay.communicate(timeout=30)
    again = subprocess.run([*args, "--once"], env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-2000:]
    wait_for("all 300 objects announced", lambda: len(object_events(prefect_api, ids)) >= len(keys), timeout_s=30)
    time.sleep(0.6)
    announced = [e.resource["trustflow.key"] for e in object_events(prefect_api, ids)]
    assert sorted(announced) == keys, "each object exactly once"
