"""Storage-event relay without services: record parsing, dedup decisions, state, ordering.

Filer records below mirror the shapes ``weed filer.meta.tail`` (SeaweedFS 4.48) printed for
S3 PUTs, overwrites, renames, multipart uploads and deletes; S3 notifications follow the
documented event message structure. Prefect is replaced by a recording transport, SQS by
a small fake of the boto3 SQS client.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from trustflow.errors import InputError, ServiceError
from trustflow.infra.event_relay.emitter import decide, emit_and_record, event_id, prefect_event
from trustflow.infra.event_relay.events import Batch, ObjectEvent
from trustflow.infra.event_relay.relay import KeyFilter, Relay
from trustflow.infra.event_relay.sources import make_source
from trustflow.infra.event_relay.sources.local_dir import walk_sorted
from trustflow.infra.event_relay.sources.s3_sqs import normalize_sequencer, parse_notification
from trustflow.infra.event_relay.sources.seaweedfs import entry_etag, parse_record
from trustflow.infra.event_relay.state import Known, Record, RelayState
from trustflow.settings import load_settings

BUCKET = "tf"
TS = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


# ---- helpers ---------------------------------------------------------------------------------
def b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def entry(
    name: str, data: bytes | None = None, *, directory: bool = False, s3_etag: str | None = None
) -> dict[str, Any]:
    """A filer entry as the tail prints it (S3 PUTs carry Seaweed-X-Amz-ETag and attributes.md5)."""
    md5 = b64(hashlib.md5(data).digest()) if data is not None and s3_etag is None else ""
    extended = {} if directory else {"Seaweed-X-Amz-ETag": b64(s3_etag or md5_hex(data or b""))}
    return {
        "name": name,
        "isDirectory": directory,
        "chunks": [],
        "attributes": {"fileSize": str(len(data or b"")), "md5": md5, "mtime": "1795514351"},
        "extended": extended,
    }


def record(
    ts: int, directory: str, old: dict | None, new: dict | None, new_parent: str | None = None
) -> dict[str, Any]:
    return {
        "directory": directory,
        "eventNotification": {
            "oldEntry": old,
            "newEntry": new,
            "deleteChunks": True,
            "newParentPath": new_parent if new_parent is not None else (directory if new else ""),
        },
        "tsNs": str(ts),
        "events": [],
    }


class RecordingTransport:
    """Stands in for Prefect: keeps what it was sent; can be told to refuse."""

    name = "recording"

    def __init__(self) -> None:
        self.sent: list[Any] = []
        self.fail = False
        self.calls: list[str] | None = None

    def send(self, events: Sequence[Any]) -> None:
        if self.calls is not None:
            self.calls.append(f"send:{len(events)}")
        if self.fail:
            raise ServiceError("Prefect API down")
        self.sent.extend(events)

    def close(self) -> None:
        return None


def ev(kind: str, key: str, etag: str = "e1", seq: str = "", size: int = 1) -> ObjectEvent:
    return ObjectEvent(kind, BUCKET, key, etag, size, TS, seq)  # type: ignore[arg-type]


# ---- SeaweedFS filer records ---------------------------------------------------------------
def test_filer_records_map_to_object_events() -> None:
    root = f"/buckets/{BUCKET}"
    put = record(100, f"{root}/incoming", None, entry("a.txt", b"hello"))
    same = record(101, f"{root}/incoming", entry("a.txt", b"hello"), entry("a.txt", b"hello"))
    rename = record(102, f"{root}/incoming", entry("a.txt", b"hello"), entry("b.txt", b"hello"), f"{root}/models")
    delete = record(103, f"{root}/models", entry("b.txt", b"hello"), None)
    mkdir = record(104, root, None, entry("incoming", directory=True))
    part = record(105, f"{root}/.uploads/abc_123", None, entry("0001_x.part", b"x" * 10))
    multipart = record(
        106, f"{root}/models", None, entry("big.bin", b"y" * 10, s3_etag="b80965183800174acbfed42ed19781c2-2")
    )
    other_bucket = record(107, "/buckets/other", None, entry("z", b"z"))

    ts, events = parse_record(put, BUCKET)
    assert ts == 100
    assert [(e.kind, e.key, e.etag, e.size, e.seq) for e in events] == [
        ("created", "incoming/a.txt", md5_hex(b"hello"), 5, f"{100:020d}")
    ]
    assert events[0].resource_id == f"s3://{BUCKET}/incoming/a.txt"
    assert [(e.kind, e.key) for e in parse_record(same, BUCKET)[1]] == [("created", "incoming/a.txt")]
    assert [(e.kind, e.key) for e in parse_record(rename, BUCKET)[1]] == [
        ("deleted", "incoming/a.txt"),
        ("created", "models/b.txt"),
    ]
    assert [(e.kind, e.key, e.etag) for e in parse_record(delete, BUCKET)[1]] == [
        ("deleted", "models/b.txt", md5_hex(b"hello"))
    ]
    assert parse_record(mkdir, BUCKET)[1] == []
    assert parse_record(part, BUCKET)[1] == [], "in-progress multipart parts are not objects"
    assert [e.etag for e in parse_record(multipart, BUCKET)[1]] == ["b80965183800174acbfed42ed19781c2-2"]
    assert parse_record(other_bucket, BUCKET)[1] == []


def test_filer_etag_without_s3_attribute_follows_seaweedfs_rules() -> None:
    data = b"written through the filer"
    filer_only = {
        "name": "f",
        "attributes": {"md5": b64(hashlib.md5(data).digest()), "fileSize": "25"},
        "extended": {},
        "chunks": [],
    }
    assert entry_etag(filer_only) == md5_hex(data)
    c1, c2 = hashlib.md5(b"1").digest(), hashlib.md5(b"2").digest()
    chunked = {"name": "f", "attributes": {"md5": ""}, "extended": {}, "chunks": [{"eTag": b64(c1)}, {"eTag": b64(c2)}]}
    assert entry_etag(chunked) == f"{hashlib.md5(c1 + c2).hexdigest()}-2"
    single = {"name": "f", "attributes": {"md5": ""}, "extended": {}, "chunks": [{"eTag": b64(c1)}]}
    assert entry_etag(single) == c1.hex()


def _fake_weed(tmp_path: Path, stdout_text: str, stderr_text: str = "") -> str:
    """An executable standing in for `weed`: prints canned tail output, then exits."""
    (tmp_path / "out.txt").write_text(stdout_text)
    (tmp_path / "err.txt").write_text(stderr_text)
    script = tmp_path / "weed"
    script.write_text(f"#!/bin/sh\ncat {tmp_path / 'out.txt'}\ncat {tmp_path / 'err.txt'} >&2\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def test_seaweedfs_source_reads_pretty_printed_stream_and_resumes(tmp_path: Path) -> None:
    from trustflow.infra.event_relay.sources.seaweedfs import SeaweedFSSource

    root = f"/buckets/{BUCKET}"
    recs = [record(1_000 + i, f"{root}/in", None, entry(f"k{i}", b"v%d" % i)) for i in range(5)]
    text = "".join(json.dumps(r, indent=2) + "\n" for r in recs)  # multi-line records, like the tool
    options = SeaweedFSSource.Options(bucket=BUCKET, filer="127.0.0.1:1", once=True)
    transport = RecordingTransport()
    with RelayState(tmp_path / "state", "sw-test") as state:
        source = SeaweedFSSource(options, load_settings(), weed=_fake_weed(tmp_path, text))
        stats = Relay(source, state, transport, poll_timeout_s=0.05).run(once=True)
        assert stats.created == 5 and state.position() == "1004"
        # a restart replays from before the position: nothing is announced twice
        Relay(
            SeaweedFSSource(options, load_settings(), weed=_fake_weed(tmp_path, text)),
            state,
            transport,
            poll_timeout_s=0.05,
        ).run(once=True)
    assert [e.resource["trustflow.key"] for e in transport.sent] == [f"in/k{i}" for i in range(5)]


def test_seaweedfs_source_reports_filer_errors(tmp_path: Path) -> None:
    from trustflow.infra.event_relay.sources.seaweedfs import SeaweedFSSource

    weed = _fake_weed(tmp_path, "", "tail 127.0.0.1:1: subscribing filer meta change: rpc error: connection refused\n")
    options = SeaweedFSSource.Options(bucket=BUCKET, filer="127.0.0.1:1", once=True)
    with RelayState(tmp_path / "state", "sw-err") as state, pytest.raises(ServiceError, match="connection refused"):
        Relay(SeaweedFSSource(options, load_settings(), weed=weed), state, RecordingTransport()).run(once=True)


# ---- S3 notifications ------------------------------------------------------------------------
def s3_record(
    name: str, key: str, etag: str | None = None, size: int = 0, sequencer: str = "0055AED6DCD90281E5"
) -> dict:
    obj: dict[str, Any] = {"key": key, "sequencer": sequencer}
    if etag is not None:
        obj.update({"eTag": etag, "size": size})
    return {
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "eu-west-1",
        "eventTime": "2026-03-01T12:00:00.123Z", "eventName": name,
        "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": "tf-models", "arn": "arn:aws:s3:::tf-models"}, "object": obj},
    }  # fmt: skip


def test_s3_notifications_parse() -> None:
    body = json.dumps({"Records": [
        s3_record("ObjectCreated:Put", "models/red+flower%2B1.yaml", "d41d8cd98f00b204e9800998ecf8427e", 1024),
        s3_record("ObjectCreated:CompleteMultipartUpload", "models/ckpt.safetensors", "b80965183800174acbfed42ed19781c2-12", 99),
        s3_record("ObjectRemoved:Delete", "incoming/old.jsonl"),
        s3_record("ObjectRemoved:DeleteMarkerCreated", "incoming/v.jsonl"),
        s3_record("ObjectRestore:Completed", "models/cold.bin", "aa", 1),
    ]})  # fmt: skip
    events = parse_notification(body)
    assert [(e.kind, e.bucket, e.key) for e in events] == [
        ("created", "tf-models", "models/red flower+1.yaml"),
        ("created", "tf-models", "models/ckpt.safetensors"),
        ("deleted", "tf-models", "incoming/old.jsonl"),
        ("deleted", "tf-models", "incoming/v.jsonl"),
    ]
    assert events[0].etag == "d41d8cd98f00b204e9800998ecf8427e" and events[0].size == 1024
    assert events[0].ts == datetime(2026, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)
    assert events[0].resource_id == "s3://tf-models/models/red flower+1.yaml"
    # SNS fan-out wraps the notification; S3's test message carries no records
    sns = json.dumps({"Type": "Notification", "MessageId": "m", "Message": body})
    assert len(parse_notification(sns)) == 4
    assert (
        parse_notification(json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "tf-models"})) == []
    )
    with pytest.raises(InputError, match="not JSON"):
        parse_notification("not json", "SQS message 42")
    with pytest.raises(InputError, match="Records"):
        parse_notification(json.dumps({"hello": 1}))


def test_sequencers_of_different_lengths_compare_in_event_order() -> None:
    assert normalize_sequencer("0055AED6DCD90281E5") < normalize_sequencer("0055AED6DCD90281E6")
    assert normalize_sequencer("0055aed6dcd90281e5") == normalize_sequencer("0055AED6DCD90281E5")
    assert normalize_sequencer("0055AED6DCD90281E5") < normalize_sequencer("0055AED6DCD90281E501")  # right-padded


class FakeSQS:
    """A test double of boto3's SQS client: receive_message / delete_message_batch."""

    def __init__(self, bodies: list[str], calls: list[str]) -> None:
        self.messages = [{"MessageId": f"m{i}", "ReceiptHandle": f"rh{i}", "Body": b} for i, b in enumerate(bodies)]
        self.calls = calls
        self.deleted: list[str] = []
        self.in_flight: set[str] = set()  # received, hidden until their visibility timeout

    def receive_message(self, QueueUrl: str, MaxNumberOfMessages: int, WaitTimeSeconds: int) -> dict:
        hidden = set(self.deleted) | self.in_flight
        visible = [m for m in self.messages if m["ReceiptHandle"] not in hidden][:MaxNumberOfMessages]
        self.in_flight.update(m["ReceiptHandle"] for m in visible)
        self.calls.append(f"receive:{len(visible)}")
        return {"Messages": visible} if visible else {}

    def visibility_timeout_passes(self) -> None:
        self.in_flight.clear()

    def delete_message_batch(self, QueueUrl: str, Entries: list[dict]) -> dict:
        self.calls.append(f"delete:{len(Entries)}")
        self.deleted.extend(e["ReceiptHandle"] for e in Entries)
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}


def _sqs_relay(tmp_path: Path, fake: FakeSQS, transport: RecordingTransport) -> tuple[Relay, RelayState]:
    from trustflow.infra.event_relay.sources.s3_sqs import SqsSource

    options = SqsSource.Options(queue_url="https://sqs.eu-west-1.amazonaws.com/1/q", bucket="tf-models", once=True)
    state = RelayState(tmp_path / "state", "sqs-test")
    return Relay(SqsSource(options, load_settings(), client=fake), state, transport, poll_timeout_s=0), state


def test_sqs_messages_are_deleted_only_after_emit_and_record(tmp_path: Path) -> None:
    calls: list[str] = []
    bodies = [
        json.dumps({"Records": [s3_record("ObjectCreated:Put", f"models/m{i}.yaml", f"etag{i}", 10, f"00{i:02d}")]})
        for i in range(3)
    ]
    bodies.append("garbage")  # not a notification: stays in the queue for its redrive policy
    fake = FakeSQS(bodies, calls)
    transport = RecordingTransport()
    transport.calls = calls

    transport.fail = True
    relay, state = _sqs_relay(tmp_path, fake, transport)
    with pytest.raises(ServiceError):
        relay.run(once=True)
    assert fake.deleted == [] and state.lookup(["models/m0.yaml"]) == {}, "nothing acked or recorded when emit failed"
    state.close()

    calls.clear()
    fake.visibility_timeout_passes()  # what was received but never deleted comes back
    transport.fail = False
    relay, state = _sqs_relay(tmp_path, fake, transport)
    relay.run(once=True)
    assert calls.index("send:3") < calls.index("delete:3"), calls
    assert sorted(fake.deleted) == ["rh0", "rh1", "rh2"]
    assert set(state.lookup([f"models/m{i}.yaml" for i in range(3)])) == {f"models/m{i}.yaml" for i in range(3)}
    state.close()


# ---- dedup decisions and the state ----------------------------------------------------------
def test_decide() -> None:
    live = Known("e1", 1, "0005", False)
    gone = Known("e1", 1, "0007", True)
    assert decide(ev("created", "k", "e1", "0001"), None) == (True, Known("e1", 1, "0001", False))
    assert decide(ev("created", "k", "e1", "0006"), live) == (False, Known("e1", 1, "0006", False)), (
        "same bytes: silent"
    )
    assert decide(ev("created", "k", "e2", "0006"), live)[0] is True, "new bytes: announce"
    assert decide(ev("created", "k", "e2", "0004"), live) == (False, None), "older than what was recorded"
    assert decide(ev("deleted", "k", "", "0006"), live) == (True, Known("e1", 1, "0006", True))
    assert decide(ev("created", "k", "e1", "0008"), gone)[0] is True, "re-created after a delete"
    assert decide(ev("deleted", "k", "", "0009"), gone) == (False, Known("e1", 1, "0009", True))
    # an unknown key's delete is not announced, but its order is kept (SQS reorders)
    assert decide(ev("deleted", "k", "", "0009"), None) == (False, Known("", 1, "0009", True))
    assert decide(ev("created", "k", "e1", "0008"), Known("", 1, "0009", True)) == (False, None)
    # unordered sources (local fingerprints): no ordering check, no tombstones
    assert decide(ev("created", "k", "e2", "0001"), live, ordered=False)[0] is True
    assert decide(ev("deleted", "k"), None, ordered=False) == (False, None)


def test_state_persists_rows_and_position_and_locks(tmp_path: Path) -> None:
    with RelayState(tmp_path, "stream-a") as state:
        assert state.position() is None
        keys = [f"p/{i:04d}" for i in range(2500)] + ["p.txt", "p/", "q/1"]
        state.commit([Record(k, Known("e", 1, "", False)) for k in keys], "42")
        state.commit([Record("p/0001", Known("e", 1, "", True))], None)
        with pytest.raises(ServiceError, match="already runs"):
            RelayState(tmp_path, "stream-a")
    with RelayState(tmp_path, "stream-a") as state:
        assert state.position() == "42"
        assert state.lookup(["p/0000", "p/0001", "nope"]) == {
            "p/0000": Known("e", 1, "", False),
            "p/0001": Known("e", 1, "", True),
        }
        listed = [k for k, _ in state.iter_keys("p/", page=100)]
        assert listed == sorted(k for k in keys if k.startswith("p/") and k != "p/0001")
        assert state.counts() == {"live": len(keys) - 1, "tombstones": 1}
    with RelayState(tmp_path, "stream-b") as other:
        assert other.position() is None, "each stream has its own state"


def test_emit_and_record_is_at_least_once_and_deterministic(tmp_path: Path) -> None:
    transport = RecordingTransport()
    batch = Batch(
        events=[ev("created", "a", "e1", "01"), ev("created", "a", "e1", "02"), ev("deleted", "b", "", "03")],
        position="03",
    )
    with RelayState(tmp_path, "s") as state:
        transport.fail = True
        with pytest.raises(ServiceError):
            emit_and_record(state, transport, batch, "s", "test")
        assert state.position() is None and state.lookup(["a"]) == {}
        transport.fail = False
        counts = emit_and_record(state, transport, batch, "s", "test")
        assert (counts.created, counts.deleted, counts.unchanged) == (1, 0, 2)
        assert state.position() == "03"
        again = emit_and_record(state, transport, batch, "s", "test")
        assert again.emitted == 0 and len(transport.sent) == 1
    first = transport.sent[0]
    assert first.event == "trustflow.object.created"
    assert first.resource.id == f"s3://{BUCKET}/a"
    assert first.resource["trustflow.etag"] == "e1" and first.payload == {
        "bucket": BUCKET,
        "key": "a",
        "etag": "e1",
        "size": 1,
        "modified": TS.isoformat(),
    }
    # a re-emit of the same change has the same id, so Prefect stores and triggers it once
    assert first.id == event_id("s", ev("created", "a", "e1", "01"))
    assert prefect_event("s", "test", ev("created", "a", "e1", "01")).id == first.id
    assert event_id("s", ev("created", "a", "e1", "09")) != first.id


def test_key_filter_globs() -> None:
    f = KeyFilter(prefix="runs/", exclude=("**/parts/part-*.tmp", "**/_manifest.json.*", "runs/prefect-results/**"))
    assert f("runs/a/parts/part-1.parquet")
    assert not f("runs/a/b/parts/part-1.tmp")
    assert not f("runs/x/_manifest.json.tmp")
    assert not f("runs/prefect-results/abc")
    assert not f("models/x.yaml"), "outside the prefix"
    g = KeyFilter(include=("incoming/**", "models/*.yaml"))
    assert g("incoming/a/b.jsonl") and g("models/m.yaml")
    assert not g("models/sub/m.yaml") and not g("other/x")


# ---- local directory ---------------------------------------------------------------------------
def _local_relay(root: Path, state: RelayState, transport: RecordingTransport, once: bool = True) -> Relay:
    source = make_source("local", load_settings(), root=root, once=once)
    return Relay(source, state, transport, poll_timeout_s=0.1)


def test_walk_sorted_matches_string_order(tmp_path: Path) -> None:
    for rel in ["a.txt", "a/b", "a/c/d", "a-b", "b", "a/.tmp-123", "A"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    keys = [k for k, _ in walk_sorted(tmp_path)]
    assert keys == sorted(["a.txt", "a/b", "a/c/d", "a-b", "b", "A"])


def test_local_catch_up_scan_against_state(tmp_path: Path) -> None:
    root = tmp_path / "store"
    (root / "models").mkdir(parents=True)
    for name in ("a", "b", "c"):
        (root / "models" / f"{name}.yaml").write_text(name)
    (root / "models" / ".tmp-0f0f").write_text("half written")
    transport = RecordingTransport()
    with RelayState(tmp_path / "state", "local") as state:
        assert _local_relay(root, state, transport).run(once=True).created == 3
        first = {e.resource.id: e.resource["trustflow.etag"] for e in transport.sent}
        assert first[f"file://{root}/models/a.yaml"] == md5_hex(b"a")
        # while the relay is down: one changed, one deleted, one added, one touched only
        (root / "models" / "a.yaml").write_text("a2")
        (root / "models" / "b.yaml").unlink()
        (root / "models" / "d.yaml").write_text("d")
        os.utime(root / "models" / "c.yaml", ns=(time.time_ns(), time.time_ns() + 10**9))
        transport.sent.clear()
        stats = _local_relay(root, state, transport).run(once=True)
    assert sorted((e.event.rsplit(".", 1)[1], e.resource["trustflow.key"]) for e in transport.sent) == [
        ("created", "models/a.yaml"), ("created", "models/d.yaml"), ("deleted", "models/b.yaml"),
    ]  # fmt: skip
    assert stats.unchanged == 1  # c.yaml: new mtime, same bytes


@pytest.mark.skipif(sys.platform != "linux", reason="inotify")
def test_local_live_changes(tmp_path: Path) -> None:
    root = tmp_path / "store"
    root.mkdir()
    transport = RecordingTransport()
    with RelayState(tmp_path / "state", "local-live") as state:
        relay = _local_relay(root, state, transport, once=False)
        thread = threading.Thread(target=relay.run)
        thread.start()
        try:
            (root / "incoming").mkdir()
            (root / "incoming" / "x.jsonl").write_text("{}\n")
            _wait(lambda: len(transport.sent) == 1)
            (root / "incoming" / "x.jsonl").unlink()
            _wait(lambda: len(transport.sent) == 2)
        finally:
            relay.stop.set()
            thread.join(10)
    assert [e.event for e in transport.sent] == ["trustflow.object.created", "trustflow.object.deleted"]
    assert transport.sent[1].resource["trustflow.etag"] == md5_hex(b"{}\n")


def _wait(condition: Any, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
