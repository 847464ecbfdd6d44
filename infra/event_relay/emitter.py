"""Announce a batch to Prefect, then remember it: the only place events leave the relay.

``emit_and_record`` decides per event against the state (``decide``), sends what is new,
and writes the state only after the send returned. A crash between the two re-emits the
batch on restart (at-least-once); the event id is a hash of (stream, kind, key, etag, seq),
so Prefect, which stores and triggers on an event id once, also drops those re-emits.

Two transports, both Prefect's events API:

* ``rest`` (default): ``POST /api/events`` with up to ``chunk`` events per request. The
  server answers only after accepting the whole batch, so "sent" means "received", and a
  refusal is an exception, never a silent drop.
* ``emit-event``: ``prefect.events.emit_event`` per event, then wait until Prefect's
  background events worker has sent its queue. That worker logs and drops an event it
  fails to send, so this transport cannot tell a lost event from a sent one; it is kept
  for comparison and for setups that configure Prefect's events client globally.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from trustflow.errors import ConfigError, ServiceError
from trustflow.infra.event_relay.events import Batch, ObjectEvent
from trustflow.infra.event_relay.state import Known, Record, RelayState

if TYPE_CHECKING:
    from prefect.events import Event

# Fixed namespace for deterministic event ids (uuid5 of this project's name).
EVENT_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://trustflow/event-relay")


def decide(event: ObjectEvent, known: Known | None, ordered: bool = True) -> tuple[bool, Known | None]:
    """(announce it?, the row to store or None for no write) for ``event`` given the state.

    * An older or replayed change of the key (``seq`` not above the stored one) is ignored
      when the source orders its changes (``ordered``); otherwise ``seq`` is a fingerprint.
    * ``created`` with the etag already announced and not deleted since: nothing to say,
      but the newer ``seq`` is stored so a replay of older records stays ignored.
    * ``deleted`` is announced only for a key announced as live; otherwise a tombstone
      with its ``seq`` is stored, so a late, older ``created`` (SQS reorders) is ignored.
    """
    if ordered and event.seq and known is not None and known.seq and event.seq <= known.seq:
        return False, None
    if event.kind == "created":
        row = Known(event.etag, event.size, event.seq, False)
        if known is not None and not known.deleted and known.etag == event.etag:
            return False, (row if event.seq != known.seq or event.size != known.size else None)
        return True, row
    if known is not None and not known.deleted:
        return True, Known(known.etag, known.size, event.seq, True)
    if ordered and event.seq:
        last = known or Known(event.etag, event.size, "", True)
        return False, Known(last.etag, last.size, event.seq, True)
    return False, None


def event_id(stream: str, event: ObjectEvent) -> uuid.UUID:
    """The same logical change always gets the same id, so Prefect drops a re-emit."""
    order = event.seq or event.ts.isoformat()
    return uuid.uuid5(EVENT_ID_NAMESPACE, "\n".join((stream, event.kind, event.key, event.etag, order)))


def store_path(key: str, root: str) -> str:
    """``key`` relative to the store root inside the bucket (``team/a/models/x`` → ``models/x``
    for a store at ``s3://bucket/team/a``): what triggers match, whatever the store prefix."""
    root = root.strip("/")
    return key[len(root) + 1 :] if root and key.startswith(root + "/") else key


def prefect_event(stream: str, source: str, event: ObjectEvent, now: datetime | None = None, root: str = "") -> Event:
    """The Prefect event for one object change.

    Resource labels carry bucket, key (also as ``trustflow.path``) and etag so deployment
    triggers can match on them (``match: {"trustflow.path": "models/*"}``) and template
    parameters from them; the payload repeats them with the size and
    the object's own modification time. ``occurred`` is the time of announcing: Prefect
    evaluates triggers on it, and a catch-up after downtime must not look like old news.
    """
    from prefect.events import Event

    return Event.model_validate(  # validated as Prefect would: its own datetime and Resource types
        {
            "event": event.event_name,
            "occurred": now or datetime.now(UTC),
            "id": event_id(stream, event),
            "resource": {
                "prefect.resource.id": event.resource_id,
                "prefect.resource.name": event.key,
                "trustflow.bucket": event.bucket,
                "trustflow.key": event.key,
                # what prefect.yaml's triggers match (models/*, incoming/*)
                "trustflow.path": store_path(event.key, root),
                "trustflow.etag": event.etag,
                "trustflow.size": str(event.size),
                "trustflow.source": source,
            },
            "payload": {
                "bucket": event.bucket,
                "key": event.key,
                "etag": event.etag,
                "size": event.size,
                "modified": event.ts.isoformat(),
            },
        }
    )


class Transport(Protocol):
    name: str

    def send(self, events: Sequence[Event]) -> None:
        """Deliver every event or raise ``ServiceError``."""

    def close(self) -> None: ...


class RestTransport:
    """``POST /api/events`` through Prefect's own HTTP client (auth, retries, raise on error)."""

    name = "rest"

    def __init__(self, api_url: str, chunk: int = 500) -> None:
        from prefect.client.orchestration import SyncPrefectClient
        from prefect.settings import get_current_settings

        api = get_current_settings().api
        self.api_url = api_url
        self.chunk = chunk
        self._client = SyncPrefectClient(
            api_url,
            auth_string=api.auth_string.get_secret_value() if api.auth_string else None,
            api_key=api.key.get_secret_value() if api.key else None,
        )
        self._client.__enter__()

    def send(self, events: Sequence[Event]) -> None:
        import httpx

        for start in range(0, len(events), self.chunk):
            body = [e.model_dump(mode="json") for e in events[start : start + self.chunk]]
            try:
                self._client.request("POST", "/events", json=body)
            except (httpx.HTTPError, OSError) as exc:
                raise ServiceError(
                    f"Prefect API {self.api_url}: {len(body)} events not accepted ({type(exc).__name__}: {exc})"
                ) from None

    def close(self) -> None:
        self._client.__exit__(None, None, None)


class EmitEventTransport:
    """``prefect.events.emit_event`` per event, then wait for Prefect's events worker to send."""

    name = "emit-event"

    def __init__(self, api_url: str, drain_timeout_s: float = 60.0) -> None:
        from prefect.settings import PREFECT_API_URL

        configured = PREFECT_API_URL.value()
        if configured != api_url:
            raise ConfigError(
                f"--transport emit-event sends to PREFECT_API_URL ({configured or 'unset'}), "
                f"not to {api_url}: export PREFECT_API_URL={api_url}"
            )
        self.api_url = api_url
        self.drain_timeout_s = drain_timeout_s

    def send(self, events: Sequence[Event]) -> None:
        from prefect.events import emit_event
        from prefect.events.worker import EventsWorker

        for e in events:
            sent = emit_event(
                event=e.event, resource=dict(e.resource.root), payload=e.payload, occurred=e.occurred, id=e.id
            )
            if sent is None:
                raise ServiceError(f"prefect.events.emit_event did not send {e.event} (Prefect API {self.api_url})")
        waiter = threading.Thread(target=EventsWorker.instance().wait_until_empty, daemon=True)
        waiter.start()
        waiter.join(self.drain_timeout_s)
        if waiter.is_alive():
            raise ServiceError(
                f"Prefect events worker did not send {len(events)} events within {self.drain_timeout_s:.0f}s"
            )

    def close(self) -> None:
        return None


def make_transport(name: str, api_url: str) -> Transport:
    if name == "rest":
        return RestTransport(api_url)
    if name == "emit-event":
        return EmitEventTransport(api_url)
    raise ConfigError(f"--transport {name!r}: use rest or emit-event")


@dataclass
class EmitCounts:
    created: int = 0
    deleted: int = 0
    unchanged: int = 0

    @property
    def emitted(self) -> int:
        return self.created + self.deleted


def emit_and_record(
    state: RelayState,
    transport: Transport,
    batch: Batch,
    stream: str,
    source: str,
    ordered: bool = True,
    root: str = "",
) -> EmitCounts:
    """Decide, send the new events, then record rows and position in one transaction."""
    counts = EmitCounts()
    known = state.lookup(e.key for e in batch.events)
    records: dict[str, Record] = {}
    outgoing: list[Event] = []
    now = datetime.now(UTC)
    for event in batch.events:
        announce, row = decide(event, known.get(event.key), ordered)
        if row is not None:
            known[event.key] = row  # later events of this batch see this one
            records[event.key] = Record(event.key, row)
        if not announce:
            counts.unchanged += 1
            continue
        if event.kind == "deleted" and row is not None and not event.etag:
            event = replace(event, etag=row.etag, size=row.size)  # announce what was deleted
        outgoing.append(prefect_event(stream, source, event, now, root))
        if event.kind == "created":
            counts.created += 1
        else:
            counts.deleted += 1
    if outgoing:
        transport.send(outgoing)
    if records or batch.position is not None:
        state.commit(list(records.values()), batch.position)
    return counts
