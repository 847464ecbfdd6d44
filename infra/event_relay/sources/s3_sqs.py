"""AWS S3: bucket notifications delivered to an SQS queue.

The queue is the position: a message stays in it until ``ack`` deletes it, which the relay
calls only after the batch's events were emitted and recorded, so a crash anywhere before
that redelivers the message (after its visibility timeout). SQS may deliver twice and out
of order; the ``sequencer`` of each record (right-padded with zeros, as AWS documents)
orders the changes of one key, and the state ignores older ones.

Messages can be the S3 notification itself or an SNS envelope around it (S3 → SNS → SQS
fan-out). ``s3:TestEvent`` messages are acknowledged and ignored. A message that is not a
notification is left in the queue (counted, logged once) for the queue's redrive policy.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import unquote_plus

from trustflow.errors import ConfigError, InputError
from trustflow.infra.event_relay.events import Batch, ObjectEvent
from trustflow.infra.event_relay.sources import SOURCES, ObjectSource, SourceOptions
from trustflow.infra.event_relay.state import RelayState
from trustflow.settings import Settings

logger = logging.getLogger("trustflow.event_relay")

SEQ_WIDTH = 64
MAX_PER_RECEIVE = 10  # SQS limit for ReceiveMessage and DeleteMessageBatch


def normalize_sequencer(value: str | None) -> str:
    """Upper-case hex right-padded with zeros, so string order is event order (per key)."""
    if not value:
        return ""
    return value.upper().ljust(SEQ_WIDTH, "0")


def _event_time(value: str | None) -> datetime:
    if not value:
        return datetime.now(UTC)
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def parse_notification(body: str, where: str = "SQS message") -> list[ObjectEvent]:
    """Object events in one SQS message body; [] for test events and other event types."""
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise InputError(f"{where}: body is not JSON ({exc})") from None
    if isinstance(doc, dict) and doc.get("Type") == "Notification" and isinstance(doc.get("Message"), str):
        return parse_notification(doc["Message"], f"{where} (SNS message)")
    if not isinstance(doc, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(doc).__name__}")
    if doc.get("Event") == "s3:TestEvent":
        return []
    records = doc.get("Records")
    if not isinstance(records, list):
        raise InputError(f"{where}: no Records list (not an S3 event notification)")
    events: list[ObjectEvent] = []
    for index, record in enumerate(records):
        event = _parse_record(record, f"{where} Records[{index}]")
        if event is not None:
            events.append(event)
    return events


def _parse_record(record: Any, where: str) -> ObjectEvent | None:
    if not isinstance(record, dict):
        raise InputError(f"{where}: expected an object")
    if record.get("eventSource", "aws:s3") != "aws:s3":
        return None
    name = str(record.get("eventName", ""))
    kind: Literal["created", "deleted"]
    if name.startswith("ObjectCreated:"):
        kind = "created"
    elif name.startswith("ObjectRemoved:"):
        kind = "deleted"  # Delete and DeleteMarkerCreated: the key no longer reads
    else:
        return None  # restore, replication, tagging, lifecycle transitions: not a change of bytes
    try:
        s3 = record["s3"]
        bucket = s3["bucket"]["name"]
        obj = s3["object"]
        key = unquote_plus(obj["key"])
    except (KeyError, TypeError):
        raise InputError(f"{where}: {name} record lacks s3.bucket.name or s3.object.key") from None
    etag = str(obj.get("eTag") or "").strip('"')
    return ObjectEvent(
        kind=kind,
        bucket=bucket,
        key=key,
        etag=etag,
        size=int(obj.get("size") or 0),
        ts=_event_time(record.get("eventTime")),
        seq=normalize_sequencer(obj.get("sequencer")),
    )


class SqsOptions(SourceOptions):
    """``queue_url``: the SQS queue receiving the bucket's notifications (required to build)."""

    queue_url: str | None = None


@SOURCES.register("s3")
class SqsSource(ObjectSource):
    """Receives S3 notifications from ``--queue-url`` with long polling."""

    Options = SqsOptions
    ordered = True

    def __init__(self, options: SqsOptions, settings: Settings, client: Any = None) -> None:
        if not options.queue_url:
            raise ConfigError("--source s3 needs --queue-url (the SQS queue receiving the bucket's notifications)")
        self.queue_url = options.queue_url
        self._bucket = options.bucket or ""
        self.prefix = options.prefix
        self.once = options.once
        self._settings = settings
        self._client = client
        self._drained = False
        self.invalid_messages = 0

    @property
    def stream(self) -> str:
        return f"s3:{self.queue_url}#{self._bucket or '*'}/{self.prefix}"

    @property
    def bucket(self) -> str:
        return self._bucket

    def open(self, state: RelayState) -> None:
        if self._client is None:
            import boto3

            s = self._settings
            self._client = boto3.client(
                "sqs",
                region_name=s.s3_region,
                aws_access_key_id=s.s3_access_key_id.get_secret_value() if s.s3_access_key_id else None,
                aws_secret_access_key=s.s3_secret_access_key.get_secret_value() if s.s3_secret_access_key else None,
            )

    def poll(self, max_items: int, timeout_s: float) -> Batch:
        batch = Batch()
        wait = int(min(20, max(0, round(timeout_s))))
        for _ in range(max_items // MAX_PER_RECEIVE + 1):
            if len(batch.acks) >= max_items:
                break
            response = self._client.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(MAX_PER_RECEIVE, max_items - len(batch.acks)),
                WaitTimeSeconds=wait if not batch.acks else 0,
            )
            messages = response.get("Messages") or []
            if not messages:
                self._drained = True
                break
            self._drained = False
            for message in messages:
                where = f"SQS message {message.get('MessageId', '?')}"
                try:
                    events = parse_notification(message.get("Body", ""), where)
                except InputError as exc:
                    self.invalid_messages += 1
                    if self.invalid_messages in (1, 10) or self.invalid_messages % 1000 == 0:
                        logger.warning(
                            "%s (left for the queue's redrive policy; %d so far)", exc, self.invalid_messages
                        )
                    continue
                batch.events.extend(
                    e
                    for e in events
                    if (not self._bucket or e.bucket == self._bucket) and e.key.startswith(self.prefix)
                )
                batch.acks.append(message["ReceiptHandle"])
        return batch

    def ack(self, acks: list[Any]) -> None:
        for start in range(0, len(acks), MAX_PER_RECEIVE):
            chunk = acks[start : start + MAX_PER_RECEIVE]
            response = self._client.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": handle} for i, handle in enumerate(chunk)],
            )
            failed = response.get("Failed") or []
            if failed:  # redelivered later; the state makes that harmless
                logger.warning(
                    "SQS did not delete %d of %d messages: %s", len(failed), len(chunk), failed[0].get("Message")
                )

    def caught_up(self) -> bool:
        return self._drained

    def close(self) -> None:
        return None
