"""A local directory store (``file://`` store URLs, the demo default), followed with watchfiles.

On open the directory is scanned and merged, in key order, with the keys the state holds
(both sides are streamed, so memory stays flat): files that are new or changed since they
were announced become ``created``, announced keys that are gone become ``deleted``. Then
``watchfiles`` (inotify) reports paths that change; each is looked at when its batch is
polled, so a burst of writes to one file is announced once with its final bytes.

The etag is the MD5 of the content (what S3 would report for a simple PUT); it is computed
only when the file's mtime or size differ from what the state recorded, which is why
``seq`` here is an ``mtime_ns:size`` fingerprint and not an order (``ordered = False``).
Temp files of the artifact store's atomic writes (``.tmp-*``) are skipped.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from trustflow.errors import ConfigError
from trustflow.infra.event_relay.events import Batch, ObjectEvent, utc_from_ns
from trustflow.infra.event_relay.sources import SOURCES, ObjectSource, SourceOptions, drain
from trustflow.infra.event_relay.state import Known, RelayState
from trustflow.settings import Settings

TEMP_PREFIX = ".tmp-"


def md5_file(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as src:
        for block in iter(lambda: src.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(stat: os.stat_result) -> str:
    return f"{stat.st_mtime_ns:020d}:{stat.st_size}"


def walk_sorted(root: Path, rel: str = "") -> Iterator[tuple[str, os.stat_result]]:
    """(key, stat) of every regular file under ``root/rel`` in key (string) order.

    Sorting a directory's entries by name, with ``/`` appended to subdirectories, makes a
    depth-first walk produce keys in plain string order (``a.txt`` < ``a/b``), which is
    the order SQLite returns keys in: the merge with the state needs no key set in memory.
    """
    base = root / rel if rel else root
    try:
        entries = list(os.scandir(base))
    except (FileNotFoundError, NotADirectoryError):
        return
    named = []
    for entry in entries:
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
        except OSError:
            continue
        named.append((entry.name + "/" if is_dir else entry.name, entry, is_dir))
    for _sort_name, entry, is_dir in sorted(named, key=lambda t: t[0]):
        key = f"{rel}/{entry.name}" if rel else entry.name
        if is_dir:
            yield from walk_sorted(root, key)
        elif not entry.name.startswith(TEMP_PREFIX) and entry.is_file(follow_symlinks=False):
            try:
                yield key, entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue


class LocalDirOptions(SourceOptions):
    """``root``: the directory to follow (default: the ``file://`` store's root)."""

    root: Path | None = None


@SOURCES.register("local")
class LocalDirSource(ObjectSource):
    """Announces files under ``root/prefix``; resource ids are ``file://<root>/<key>``."""

    Options = LocalDirOptions
    ordered = False

    def __init__(self, options: LocalDirOptions, settings: Settings) -> None:
        root = options.root
        if root is None:
            from trustflow.data.store.location import parse_store_url

            location = parse_store_url(settings.effective_store_url)
            if location.scheme != "file":
                raise ConfigError("--source local needs --root or a file:// store_url")
            root = Path(location.root)
        self.root = root.expanduser().resolve()
        if not self.root.is_dir():
            raise ConfigError(f"--root {self.root}: not a directory")
        self.prefix = options.prefix
        self.once = options.once
        self._state: RelayState | None = None
        self._scan: Iterator[ObjectEvent] | None = None
        self._scan_done = False
        self._changes: queue.Queue[str] = queue.Queue(maxsize=100_000)
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    @property
    def stream(self) -> str:
        return f"local:{self.root}/{self.prefix}"

    @property
    def bucket(self) -> str:
        return str(self.root)  # absolute, so resource ids read file:///root/key

    def open(self, state: RelayState) -> None:
        self._state = state
        if not self.once:  # watch first: nothing written during the scan is missed
            ready = threading.Event()
            self._watcher = threading.Thread(target=self._watch, args=(ready,), name="watchfiles", daemon=True)
            self._watcher.start()
            ready.wait(5)
        self._scan = self._scan_events()

    # ---- catch-up scan ------------------------------------------------------------------
    def _scan_events(self) -> Iterator[ObjectEvent]:
        assert self._state is not None
        rel = self.prefix.rsplit("/", 1)[0] if "/" in self.prefix else ""
        disk = ((k, s) for k, s in walk_sorted(self.root, rel) if k.startswith(self.prefix))
        known = self._state.iter_keys(self.prefix, live_only=True)
        d, k = next(disk, None), next(known, None)
        while d is not None or k is not None:
            if d is not None and (k is None or d[0] < k[0]):  # on disk only: new
                event = self._created(d[0], d[1], None)
                d = next(disk, None)
            elif k is not None and (d is None or k[0] < d[0]):  # announced only: gone
                event = self._deleted(k[0], k[1])
                k = next(known, None)
            else:  # both (the loop condition and the branches above leave no other case)
                assert d is not None and k is not None
                event = self._created(d[0], d[1], k[1])
                d, k = next(disk, None), next(known, None)
            if event is not None:
                yield event

    def _created(self, key: str, stat: os.stat_result, known: Known | None) -> ObjectEvent | None:
        seq = fingerprint(stat)
        if known is not None and not known.deleted and known.seq == seq:
            return None  # unchanged since announced: no need to read it
        try:
            etag = md5_file(self.root / key)
        except (FileNotFoundError, IsADirectoryError):
            return None
        return ObjectEvent("created", self.bucket, key, etag, stat.st_size, utc_from_ns(stat.st_mtime_ns), seq, "file")

    def _deleted(self, key: str, known: Known | None) -> ObjectEvent:
        etag, size = (known.etag, known.size) if known else ("", 0)
        return ObjectEvent("deleted", self.bucket, key, etag, size, utc_from_ns(time.time_ns()), "", "file")

    # ---- live changes -------------------------------------------------------------------
    def _watch(self, ready: threading.Event) -> None:
        import watchfiles

        for changes in watchfiles.watch(
            self.root, watch_filter=None, stop_event=self._stop, debounce=100, step=10,
            rust_timeout=200, yield_on_timeout=True, ignore_permission_denied=True,
        ):  # fmt: skip
            ready.set()  # the first (possibly empty) yield proves the watch is in place
            for _change, path in changes:
                with contextlib.suppress(queue.Full):  # the next scan (restart) catches what overflowed
                    self._changes.put(path, timeout=1)

    def _events_for(self, path: str) -> Iterator[ObjectEvent]:
        assert self._state is not None
        try:
            key = Path(path).relative_to(self.root).as_posix()
        except ValueError:
            return
        if not key.startswith(self.prefix) or Path(key).name.startswith(TEMP_PREFIX):
            return
        full = self.root / key
        if full.is_dir():  # a directory moved in: announce its files
            for sub, stat in walk_sorted(self.root, key):
                event = self._created(sub, stat, self._state.lookup([sub]).get(sub))
                if event is not None:
                    yield event
            return
        try:
            stat = full.stat()
        except FileNotFoundError:
            known = self._state.lookup([key]).get(key)
            if known is not None:
                yield self._deleted(key, known)
            else:  # maybe a directory that was moved away or removed as a whole
                for sub, sub_known in self._state.iter_keys(key + "/"):
                    yield self._deleted(sub, sub_known)
            return
        event = self._created(key, stat, self._state.lookup([key]).get(key))
        if event is not None:
            yield event

    # ---- interface ----------------------------------------------------------------------
    def poll(self, max_items: int, timeout_s: float) -> Batch:
        events: list[ObjectEvent] = []
        if not self._scan_done:
            assert self._scan is not None
            for event in self._scan:
                events.append(event)
                if len(events) >= max_items:
                    return Batch(events=events)
            self._scan_done = True
            return Batch(events=events)
        if self.once:
            return Batch()
        paths = list(dict.fromkeys(drain(self._changes, max_items, timeout_s)))
        for path in paths:
            events.extend(self._events_for(path))
        return Batch(events=events)

    def caught_up(self) -> bool:
        return self._scan_done and (self.once or self._changes.empty())

    def close(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
