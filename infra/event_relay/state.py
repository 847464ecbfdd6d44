"""What the relay has announced, and where its source resumes: one SQLite file per stream.

One row per key (last announced etag, size, ordering token, deleted flag) lives on disk, so
the relay's memory stays flat however many objects the bucket holds; the source position
is written in the same transaction as the rows of the batch that reached it, so a crash
can only make the relay redo work (re-emit), never skip it. A lock file keeps a second
relay off the same stream.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from trustflow.errors import ConfigError, ServiceError

SCHEMA_VERSION = "1"
_LOOKUP_CHUNK = 500  # SQLite's default limit on bound parameters is far above this


@dataclass(frozen=True, slots=True)
class Known:
    """The state's view of one key: what was last announced for it (or its tombstone)."""

    etag: str
    size: int
    seq: str
    deleted: bool


@dataclass(frozen=True, slots=True)
class Record:
    """A row to write for ``key`` after its batch was emitted."""

    key: str
    known: Known


def stream_file_stem(stream: str) -> str:
    """A readable, collision-safe file name for a stream id (which holds URLs and slashes)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", stream).strip("-")[:60]
    return f"{slug}-{hashlib.sha1(stream.encode()).hexdigest()[:10]}"


class RelayState:
    """The relay's durable memory for one stream (source + bucket/queue/root + prefix)."""

    def __init__(self, state_dir: Path, stream: str) -> None:
        self.stream = stream
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"--state-dir {state_dir}: cannot create ({exc.strerror})") from None
        self.path = state_dir / f"{stream_file_stem(stream)}.sqlite"
        self._lock_fd = self._lock(state_dir / f"{stream_file_stem(stream)}.lock")
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # a crash loses no commit; power loss may redo a batch
        self._db.executescript(
            """
            CREATE TABLE IF NOT EXISTS objects (
                key TEXT PRIMARY KEY, etag TEXT NOT NULL, size INTEGER NOT NULL,
                seq TEXT NOT NULL, deleted INTEGER NOT NULL, updated_at REAL NOT NULL
            ) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
            """
        )
        self._check_meta()

    def _lock(self, lock_path: Path) -> int:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ServiceError(f"another event relay already runs for {self.stream} (lock {lock_path})") from None
        return fd

    def _check_meta(self) -> None:
        rows = dict(self._db.execute("SELECT name, value FROM meta").fetchall())
        if not rows:
            self._db.executemany(
                "INSERT INTO meta(name, value) VALUES (?, ?)",
                [("schema_version", SCHEMA_VERSION), ("stream", self.stream)],
            )
            return
        if rows.get("schema_version") != SCHEMA_VERSION:
            raise ConfigError(f"{self.path}: relay state schema {rows.get('schema_version')} is not {SCHEMA_VERSION}")
        if rows.get("stream") != self.stream:
            raise ConfigError(f"{self.path}: belongs to stream {rows.get('stream')!r}, not {self.stream!r}")

    # ---- reads ---------------------------------------------------------------------------
    def position(self) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE name = 'position'").fetchone()
        return row[0] if row else None

    def lookup(self, keys: Iterable[str]) -> dict[str, Known]:
        """The known rows of ``keys`` (absent keys are simply missing from the result)."""
        unique = list(dict.fromkeys(keys))
        found: dict[str, Known] = {}
        for start in range(0, len(unique), _LOOKUP_CHUNK):
            chunk = unique[start : start + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            for key, etag, size, seq, deleted in self._db.execute(
                f"SELECT key, etag, size, seq, deleted FROM objects WHERE key IN ({marks})", chunk
            ):
                found[key] = Known(etag, size, seq, bool(deleted))
        return found

    def iter_keys(self, prefix: str = "", live_only: bool = True, page: int = 1000) -> Iterator[tuple[str, Known]]:
        """Keys under ``prefix`` in key order, paged so no long read transaction stays open."""
        after = None
        upper = _prefix_upper(prefix)
        while True:
            sql = "SELECT key, etag, size, seq, deleted FROM objects WHERE key >= ?"
            args: list[object] = [prefix]
            if upper is not None:
                sql += " AND key < ?"
                args.append(upper)
            if after is not None:
                sql += " AND key > ?"
                args.append(after)
            if live_only:
                sql += " AND deleted = 0"
            sql += " ORDER BY key LIMIT ?"
            args.append(page)
            rows = self._db.execute(sql, args).fetchall()
            for key, etag, size, seq, deleted in rows:
                yield key, Known(etag, size, seq, bool(deleted))
            if len(rows) < page:
                return
            after = rows[-1][0]

    def counts(self) -> dict[str, int]:
        live, deleted = self._db.execute(
            "SELECT COALESCE(SUM(deleted = 0), 0), COALESCE(SUM(deleted = 1), 0) FROM objects"
        ).fetchone()
        return {"live": int(live), "tombstones": int(deleted)}

    # ---- writes --------------------------------------------------------------------------
    def commit(self, records: Sequence[Record], position: str | None) -> None:
        """Write the rows of one emitted batch and the position it reached, atomically."""
        now = time.time()
        with _transaction(self._db):
            self._db.executemany(
                "INSERT INTO objects(key, etag, size, seq, deleted, updated_at) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET etag = excluded.etag, size = excluded.size, "
                "seq = excluded.seq, deleted = excluded.deleted, updated_at = excluded.updated_at",
                [(r.key, r.known.etag, r.known.size, r.known.seq, int(r.known.deleted), now) for r in records],
            )
            if position is not None:
                self._db.execute(
                    "INSERT INTO meta(name, value) VALUES ('position', ?) "
                    "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                    (position,),
                )

    def close(self) -> None:
        self._db.close()
        fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        os.close(self._lock_fd)

    def __enter__(self) -> RelayState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _transaction:
    """BEGIN IMMEDIATE … COMMIT (ROLLBACK on error) on an autocommit connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")


def _prefix_upper(prefix: str) -> str | None:
    """The smallest string above every string starting with ``prefix`` (None: no bound)."""
    if not prefix:
        return None
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)
