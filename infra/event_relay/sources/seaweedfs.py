"""SeaweedFS: the filer's metadata log, read with ``weed filer.meta.tail``.

SeaweedFS has no S3 bucket notifications, but every create/update/rename/delete of a filer
entry is logged with a nanosecond timestamp, and ``filer.meta.tail -timeAgo=…`` replays that
log from any point and then follows it live. The subprocess prints one pretty-printed JSON
record per change; a record is complete at a line holding only ``}``.

How records map to events (checked against SeaweedFS 4.48 output):

* ``newEntry`` only: a created file (S3 PUT, copy, completed multipart upload).
* ``oldEntry`` and ``newEntry`` at the same path: an overwrite; same bytes give the same
  etag, which the state then ignores.
* ``oldEntry`` and ``newEntry`` at different paths (``newParentPath``/name): a rename:
  the old key is deleted, the new one created.
* ``oldEntry`` only: a delete.
* Directories, and multipart parts under ``/buckets/<b>/.uploads/``, are skipped: a
  completed multipart upload appears as one new entry at its key.

The etag is what S3 HEAD returns: the S3 gateway stores it in the entry's extended
attribute ``Seaweed-X-Amz-ETag`` (base64 of the text, ``<md5>-<parts>`` for multipart);
files written through the filer directly carry only ``attributes.md5`` (base64 of the
MD5), and SeaweedFS derives the ETag from the chunks when even that is missing.

The position is the ``tsNs`` of the last record: on restart the log is replayed from a few
seconds before it (records older than it are dropped, the state ignores the overlap).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import ctypes
import hashlib
import json
import logging
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import IO, Any

from trustflow.errors import ConfigError, ServiceError
from trustflow.infra.event_relay.events import Batch, ObjectEvent, utc_from_ns
from trustflow.infra.event_relay.sources import SOURCES, ObjectSource, SourceOptions, drain
from trustflow.infra.event_relay.state import RelayState, stream_file_stem
from trustflow.settings import Settings

logger = logging.getLogger("trustflow.event_relay")

ETAG_ATTR = "Seaweed-X-Amz-ETag"
INTERNAL_DIRS = (".uploads",)  # in-progress multipart parts live here
RESUME_MARGIN_NS = 5_000_000_000  # replay a little before the position: clocks and buffers
_EOF = object()


def entry_etag(entry: dict[str, Any]) -> str:
    """The S3 ETag of a filer entry, as S3 HEAD would return it (without quotes)."""
    raw = (entry.get("extended") or {}).get(ETAG_ATTR)
    if raw:
        try:
            return base64.b64decode(raw).decode().strip('"')
        except (binascii.Error, UnicodeDecodeError):
            pass
    md5 = (entry.get("attributes") or {}).get("md5")
    if md5:
        return _b64_hex(md5)
    chunks = entry.get("chunks") or []
    if len(chunks) == 1:
        return _b64_hex(chunks[0].get("eTag", ""))
    if chunks:
        digest = hashlib.md5(b"".join(bytes.fromhex(_b64_hex(c.get("eTag", ""))) for c in chunks))
        return f"{digest.hexdigest()}-{len(chunks)}"
    content = entry.get("content") or ""
    return hashlib.md5(base64.b64decode(content) if content else b"").hexdigest()


def _b64_hex(value: str) -> str:
    """Chunk and md5 etags are base64 of the 16 MD5 bytes (older versions: hex text)."""
    if len(value) == 32 and all(c in "0123456789abcdef" for c in value):
        return value
    try:
        return base64.b64decode(value).hex()
    except binascii.Error:
        return value


def entry_size(entry: dict[str, Any]) -> int:
    size = (entry.get("attributes") or {}).get("fileSize")
    if size not in (None, ""):
        return int(size)
    return sum(int(c.get("size", 0)) for c in entry.get("chunks") or [])


def entry_key(bucket: str, directory: str, entry: dict[str, Any] | None) -> str | None:
    """The S3 key of a file entry in ``bucket``; None for directories and internal entries."""
    if not entry or entry.get("isDirectory"):
        return None
    root = f"/buckets/{bucket}/"
    path = f"{directory.rstrip('/')}/{entry.get('name', '')}"
    if not path.startswith(root):
        return None
    key = path[len(root) :]
    if not key or key.split("/", 1)[0] in INTERNAL_DIRS:
        return None
    return key


def parse_record(record: dict[str, Any], bucket: str) -> tuple[int, list[ObjectEvent]]:
    """(tsNs, events) of one ``filer.meta.tail`` record.

    A record replayed from the log's files may carry an ``events`` list: the records that
    followed it in the same batch, which the tool also prints one by one, so it is ignored.
    """
    ts_ns = int(record.get("tsNs") or 0)
    events: list[ObjectEvent] = []
    note = record.get("eventNotification")
    if note:
        directory = record.get("directory") or ""
        old, new = note.get("oldEntry"), note.get("newEntry")
        old_key = entry_key(bucket, directory, old)
        new_key = entry_key(bucket, note.get("newParentPath") or directory, new)
        ts, seq = utc_from_ns(ts_ns), f"{ts_ns:020d}"
        if old_key is not None and old_key != new_key:
            assert old is not None
            events.append(ObjectEvent("deleted", bucket, old_key, entry_etag(old), entry_size(old), ts, seq))
        if new_key is not None:
            assert new is not None
            events.append(ObjectEvent("created", bucket, new_key, entry_etag(new), entry_size(new), ts, seq))
    return ts_ns, events


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the tail process gets SIGTERM when the relay dies, even by SIGKILL."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class SeaweedFSOptions(SourceOptions):
    """``filer``: the filer's HOST:PORT (default: the local SeaweedFS's); ``log_dir``: where
    the ``weed filer.meta.tail`` log goes (default: beside the relay state)."""

    filer: str | None = None
    log_dir: Path | None = None


@SOURCES.register("seaweedfs")
class SeaweedFSSource(ObjectSource):
    """Follows ``/buckets/<bucket>/<prefix>`` in the filer's metadata log."""

    Options = SeaweedFSOptions
    ordered = True

    def __init__(self, options: SeaweedFSOptions, settings: Settings, weed: str | None = None) -> None:
        self._bucket = options.bucket or settings.seaweedfs.bucket
        self.prefix = options.prefix
        self.filer = options.filer or f"127.0.0.1:{settings.seaweedfs.filer_port}"
        if ":" not in self.filer:
            raise ConfigError(f"--filer {self.filer!r}: expected HOST:PORT (the filer's HTTP port)")
        self.once = options.once
        self.start = options.start
        self.log_dir = options.log_dir
        self._weed = weed
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=20_000)  # bounded: flat memory
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._stop = threading.Event()
        self._resume_ns = 0
        self._last_ns = 0
        self._eof = False
        self._failures = 0
        self._retry_at = 0.0

    @property
    def stream(self) -> str:
        return f"seaweedfs:{self.filer}/{self._bucket}/{self.prefix}"

    @property
    def bucket(self) -> str:
        return self._bucket

    # ---- process ---------------------------------------------------------------------------
    def argv(self, since_ns: int, now_ns: int | None = None) -> list[str]:
        """``weed filer.meta.tail`` replaying from ``since_ns`` (0: from the log's start)."""
        from trustflow.infra.seaweedfs import weed_binary

        now_ns = now_ns or time.time_ns()
        argv = [
            self._weed or weed_binary(),
            "filer.meta.tail",
            f"-filer={self.filer}",
            f"-pathPrefix=/buckets/{self._bucket}/{self.prefix}",
            f"-timeAgo={max(now_ns - since_ns, 1)}ns",
        ]
        if self.once:
            argv.append("-untilTimeAgo=1ns")  # replay up to now, then exit
        return argv

    def open(self, state: RelayState) -> None:
        position = state.position()
        if position is not None:
            self._resume_ns = int(position)
        else:
            self._resume_ns = 0 if self.start == "beginning" else time.time_ns()
        self._last_ns = self._resume_ns
        self._log_path = (self.log_dir or state.path.parent) / f"{stream_file_stem(self.stream)}.meta-tail.log"
        self._spawn()

    def _spawn(self) -> None:
        since = max(self._last_ns - RESUME_MARGIN_NS, 0) if self._last_ns else 0
        with open(self._log_path, "wb") as log:  # the child keeps its own copy of the fd
            try:
                self._proc = subprocess.Popen(
                    self.argv(since),
                    stdout=subprocess.PIPE,
                    stderr=log,
                    stdin=subprocess.DEVNULL,
                    preexec_fn=_die_with_parent,
                    bufsize=1 << 16,
                )
            except OSError as exc:
                raise ServiceError(f"cannot start weed filer.meta.tail: {exc}") from None
        self._eof = False
        self._reader = threading.Thread(target=self._read, args=(self._proc.stdout,), name="meta-tail", daemon=True)
        self._reader.start()

    def _read(self, stdout: IO[bytes]) -> None:
        """Parse records in this thread; hand (tsNs, events) to ``poll`` through the queue."""
        lines: list[bytes] = []
        for line in stdout:
            bare = line.rstrip(b"\r\n")
            if bare == b"{":  # a record starts at column 0 (nested braces are indented)
                lines = [line]
                continue
            lines.append(line)
            if bare != b"}":
                continue
            try:
                record = json.loads(b"".join(lines))
            except ValueError:
                logger.warning("skipped a filer.meta.tail record that is not JSON (%d lines)", len(lines))
                lines = []
                continue
            lines = []
            ts_ns, events = parse_record(record, self._bucket)
            if ts_ns < self._resume_ns:
                continue  # already recorded before the restart
            self._put((ts_ns, events))
        self._put(_EOF)

    def _put(self, item: Any) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def _failure_message(self) -> str:
        try:
            text = self._log_path.read_text(errors="replace").strip()
        except OSError:
            text = ""
        lines = [line for line in text.splitlines() if line.strip()]
        code = self._proc.returncode if self._proc else None
        return lines[-1] if lines else f"exited with code {code}"

    # ---- polling ---------------------------------------------------------------------------
    def poll(self, max_items: int, timeout_s: float) -> Batch:
        if self._eof and not self.once and time.monotonic() >= self._retry_at:
            self._resume_ns = self._last_ns  # everything before was handed to the relay already
            self._spawn()
        items = drain(self._queue, max_items, timeout_s)
        events: list[ObjectEvent] = []
        top = None
        for item in items:
            if item is _EOF:
                self._on_eof()
                continue
            ts_ns, evs = item
            events.extend(evs)
            top = ts_ns if top is None else max(top, ts_ns)
        if top is not None:
            self._last_ns = max(self._last_ns, top)
            self._failures = 0
        return Batch(events=events, position=str(self._last_ns) if top is not None else None)

    def _on_eof(self) -> None:
        assert self._proc is not None
        self._proc.wait()
        message = self._failure_message()
        failed = self._proc.returncode != 0 or "error" in message.lower()
        self._eof = True
        if self.once:
            if failed:
                raise ServiceError(f"weed filer.meta.tail -filer={self.filer}: {message}")
            return
        # live: the filer went away or restarted; follow again from the last record read
        self._failures += 1
        delay = min(30.0, 0.5 * 2 ** min(self._failures, 6))
        self._retry_at = time.monotonic() + delay
        if self._failures in (1, 5) or self._failures % 50 == 0:
            logger.warning("filer.meta.tail stopped (%s); retrying in %.0fs", message, delay)

    def caught_up(self) -> bool:
        return self._eof and self._queue.empty()

    def close(self) -> None:
        self._stop.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)
