"""The relay's unit of work: one object created or deleted, and the batch a source hands over.

Sources speak only this vocabulary, so the relay loop, the state and the emitter never see
filer records, S3 notification JSON or file-system events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

CREATED_EVENT = "trustflow.object.created"
DELETED_EVENT = "trustflow.object.deleted"

EventKind = Literal["created", "deleted"]


@dataclass(frozen=True, slots=True)
class ObjectEvent:
    """An object appeared (or got new bytes) or disappeared.

    ``seq`` orders changes of *one key* within one source (SeaweedFS log time, S3
    ``sequencer``, file mtime:size); it lets the state ignore stale or replayed records.
    It is compared as a string, so each source pads it to a fixed width. Empty means the
    source cannot order changes and the etag alone decides.
    """

    kind: EventKind
    bucket: str
    key: str
    etag: str
    size: int
    ts: datetime
    seq: str = ""
    scheme: str = "s3"

    @property
    def resource_id(self) -> str:
        """``s3://bucket/key``, or ``file:///root/key`` for a local store (bucket = root)."""
        return f"{self.scheme}://{self.bucket}/{self.key}"

    @property
    def event_name(self) -> str:
        return CREATED_EVENT if self.kind == "created" else DELETED_EVENT


@dataclass(slots=True)
class Batch:
    """What one ``poll`` of a source returns.

    ``position`` is where the source resumes after this batch once it is recorded (None:
    the source keeps its own position, like an SQS queue); ``acks`` are opaque handles the
    source confirms after the batch is emitted and recorded (SQS receipt handles).
    """

    events: list[ObjectEvent] = field(default_factory=list)
    position: str | None = None
    acks: list[Any] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.events or self.acks or self.position is not None)


def utc_from_ns(ts_ns: int) -> datetime:
    return datetime.fromtimestamp(ts_ns / 1e9, tz=UTC)
