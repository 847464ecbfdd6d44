"""Cross-run LLM response cache: (model fingerprint, generation config, messages) → reply.

A chat call is a pure function of three things, so its reply is kept in the artifact store
under a content address and a later call with the same three — a second run of an
overlapping suite, a new critic over old responses, a run resumed after a config change —
reads it instead of paying for it again.

- **Model fingerprint** (:func:`model_fingerprint`): what decides the weights' behaviour.
  Local models (``hf:``, ``pkg:``, ``vllm:`` on a path): a sha256 over every model file's
  name, size and contents (memoised by path, size and mtime in ``<home>/cache/llm-fingerprints.json``,
  so a multi-GB model is hashed once) plus the load dtype. HTTP models (``openai:``,
  ``endpoint:``): the base URL and the model id — a hosted model can change behind the same
  name, and the cache cannot see that (use ``--no-cache`` or a new model id after an update).
- **Generation config**: every :class:`GenParams` field (max_tokens, temperature, top_p,
  seed, stop, logprobs, top_logprobs); the request's ``id`` tag is not part of it.
- **Messages**: the full multi-turn list, roles included.

Key = sha256 of the canonical JSON (sorted keys, no whitespace, UTF-8) of the three.
Sampling without a seed (temperature > 0, ``seed`` None) is a fresh draw every call, so by
default it is *not* cached (caching would make repeated samples identical); ``sampled=True``
caches those too. Failed calls are never cached.

Layout v2 (Parquet segments; see ``docs/pipelines/seval.md`` and ``docs/schemas.md``)::

    cache/llm/v2/<namespace>/seg-<16 hex ns clock><16 random hex>.parquet

``namespace`` = sha256(fingerprint, generation config)[:20]: one model under one config.
**One segment per flush**: every ``put_many`` (a ``generate`` call's cacheable misses — a
stage's chunk of up to 2,048 prompts, a critic's batch) writes its entries as one Parquet
object (zstd, row groups of 256; columns key, messages, reply fields; the fingerprint and
config once, in the footer's key-value metadata), so 220k responses make ~100 objects, not
220k (v1 wrote one JSON object per entry). Writes are atomic (local: temp file + rename;
S3: one PUT) under a name no other writer picks, so writers never overwrite each other; a
key written by two workers sits in two segments, which is fine.

Lookups: the first lookup in a namespace lists it once (one LIST) and reads only each
segment's ``key`` column (its footer is kept) into a :class:`KeyIndex` — sorted numpy runs
of 32 key bytes + int32 segment + int32 row, **40 bytes per entry** (440k keys ≈ 18 MB);
afterwards a miss costs no request, and a batch's hits are grouped by segment: one read per
segment touched, of just the row groups holding the hits (footer not re-read; column chunks
coalesced into one ranged GET). Among several copies of a key the newest segment's valid row
wins (names sort by write time). A row whose inputs (messages + the segment's fingerprint and
config) do not hash to its key is a miss with one warning (the next copy is tried); a segment
that does not read (torn, not ours, inputs that do not hash to its namespace) is skipped with
one warning and its keys are misses — the fresh replies go to a new segment, which wins.

Compaction: when a listing finds more than ``COMPACT_AFTER`` (64) small segments (< 1,024
rows: batch-sized flushes; a stage chunk is not small) in a namespace, that cache object
merges them, oldest first and ≤ 65,536 rows per pass, into one segment holding each key's
newest valid row, then deletes the merged ones (write new, then delete old). A reader that
listed the old segments finds one gone (``FileNotFoundError``), lists the namespace again and
reads the merged one; at worst that batch's keys miss. A best-effort lease object
(``_compaction.json``, 10 min) keeps concurrent listers (Ray actors starting together) from
all compacting; S3 has no create-if-absent, so two may still race — both write a merged
copy (correct, a key in two segments is fine; twice the bytes) and both delete the old ones
(a missing one is ignored). A segment that does not read is never deleted.

v1 entries (``cache/llm/v1/``, one JSON object per key) are **ignored**: after the upgrade
the cache is cold once (each call is paid one more time and lands in v2); delete
``cache/llm/v1/`` to reclaim the space. Reading them as a fallback would bring back the
per-entry listing (220 LISTs at 220k) that v2 removes.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import hashlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from trustflow.data.schemas import SCHEMA_NAME_KEY, SCHEMA_VERSION_KEY, VersionedSchema
from trustflow.data.store import ArtifactStore
from trustflow.errors import TrustflowError
from trustflow.models.llm.base import ChatBackend, ChatRequest, ChatResult, GenParams, as_requests

log = logging.getLogger(__name__)

CACHE_ROOT = ("cache", "llm", "v2")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth", ".json", ".model", ".txt", ".tiktoken", ".jinja")


def canonical_json(value: Any) -> str:
    """One spelling per value: sorted keys, no whitespace, UTF-8 kept, no NaN."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _sha(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


def gen_config(request: GenParams) -> dict[str, Any]:
    """Every generation field that changes the reply (all of GenParams; not the ``id`` tag)."""
    return GenParams.model_validate(request.model_dump(include=set(GenParams.model_fields))).model_dump(mode="json")


def namespace_of(fingerprint: Mapping[str, Any], config: Mapping[str, Any]) -> str:
    return _sha({"fingerprint": fingerprint, "params": config})[:20]


def cache_key(fingerprint: Mapping[str, Any], config: Mapping[str, Any], messages: Sequence[Mapping[str, str]]) -> str:
    """sha256 of the canonical JSON of (model fingerprint, generation config, messages)."""
    return _sha({"fingerprint": fingerprint, "params": config, "messages": [dict(m) for m in messages]})


def cacheable(params: GenParams, sampled: bool = False) -> bool:
    """Greedy or seeded calls are reproducible; unseeded sampling only when asked (``sampled``)."""
    return params.greedy or params.seed is not None or sampled


# --------------------------------------------------------------------------- fingerprints

_DIGEST_LOCK = threading.Lock()


def _digest_memo_path() -> Path:
    from trustflow.settings import load_settings

    return load_settings().home_dir / "cache" / "llm-fingerprints.json"


def _file_sha256(path: Path) -> str:
    """Content sha256 of a file, memoised by (path, size, mtime) on disk: hashed once per version."""
    stat = path.stat()
    memo_key = f"{path.resolve()}\x00{stat.st_size}\x00{stat.st_mtime_ns}"
    memo_path = _digest_memo_path()
    with _DIGEST_LOCK:
        try:
            memo = json.loads(memo_path.read_text())
        except (OSError, ValueError):
            memo = {}
        if isinstance(memo, dict) and isinstance(memo.get(memo_key), str):
            return str(memo[memo_key])
        h = hashlib.sha256()
        with path.open("rb") as src:
            for block in iter(lambda: src.read(8 << 20), b""):
                h.update(block)
        digest = h.hexdigest()
        memo = memo if isinstance(memo, dict) else {}
        memo[memo_key] = digest
        memo_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo_path.with_name(f".{memo_path.name}.{os.getpid()}.{threading.get_ident()}")
        tmp.write_text(json.dumps(memo))
        os.replace(tmp, memo_path)  # atomic: a concurrent reader sees the old or the new memo
        return digest


def files_digest(directory: Path, only: str | None = None) -> str:
    """sha256 over (relative name, size, content sha256) of a model's files: ``only`` one file
    (a GGUF), else every weight/config/tokenizer file under ``directory`` (hidden ones skipped)."""
    if only is not None:
        files = [directory / only]
    elif directory.is_file():
        files, directory = [directory], directory.parent
    else:
        files = sorted(
            p
            for p in directory.rglob("*")
            if p.is_file()
            and p.suffix in _WEIGHT_SUFFIXES
            and not any(part.startswith(".") for part in p.relative_to(directory).parts)
        )
    if not files:
        raise TrustflowError(f"llm cache: no model files under {directory} to fingerprint")
    return _sha([[str(p.relative_to(directory)), p.stat().st_size, _file_sha256(p)] for p in files])


def model_fingerprint(spec: str, backend: ChatBackend | None = None, **load_options: Any) -> dict[str, Any]:
    """What identifies the behaviour behind ``spec`` (see the module docstring)."""
    from trustflow.models.llm.spec import LocalScheme, parse_spec, scheme_for

    parsed = parse_spec(spec)
    scheme = scheme_for(parsed)
    if parsed.scheme == "openai":
        model = parsed.fragment or getattr(backend, "model", None)
        if model is None and backend is not None and hasattr(backend, "_discover_model"):
            model = backend._discover_model()  # the id the server would pick, asked once
            backend.model = model  # type: ignore[attr-defined]
        return {"kind": "http", "base_url": parsed.target.rstrip("/"), "model": model}
    if parsed.scheme == "endpoint":
        from trustflow.settings import load_settings

        ep = load_settings().llm_endpoints.get(parsed.target)
        if ep is None:
            raise TrustflowError(f"llm_endpoints has no {parsed.target!r}")
        return {"kind": "http", "base_url": ep.base_url.rstrip("/"), "model": ep.model}
    if isinstance(scheme, LocalScheme):
        directory, gguf = scheme.local()
        dtype = load_options.get("dtype")
        if dtype is None and parsed.scheme == "pkg":
            from trustflow.models.llm.packaged import PACKAGED

            dtype = PACKAGED.get(parsed.target).default_dtype()
        return {"kind": "local", "files": files_digest(Path(directory), gguf), "dtype": dtype or "float32"}
    if parsed.scheme == "vllm":
        path = Path(parsed.target).expanduser()
        if path.exists():
            return {"kind": "vllm", "files": files_digest(path), "dtype": load_options.get("dtype")}
        return {"kind": "vllm", "hub_id": parsed.target, "dtype": load_options.get("dtype")}
    return {"kind": parsed.scheme, "target": parsed.target}


# --------------------------------------------------------------------------- the store side


@dataclass
class CacheStats:
    """Counters of one cache user (thread-safe); ``hit_rate`` = hits / lookups."""

    lookups: int = 0
    hits: int = 0
    writes: int = 0
    bypassed: int = 0  # unseeded sampling (not cacheable) or cache off after a store failure
    corrupt: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    @property
    def misses(self) -> int:
        return self.lookups - self.hits

    @property
    def hit_rate(self) -> float | None:
        return self.hits / self.lookups if self.lookups else None

    def as_dict(self) -> dict[str, int]:
        return {
            "cache_lookups": self.lookups,
            "cache_hits": self.hits,
            "cache_misses": self.misses,
            "cache_writes": self.writes,
            "cache_bypassed": self.bypassed,
            "cache_corrupt": self.corrupt,
        }


def hit_rate(counters: Mapping[str, Any]) -> float | None:
    """hits / lookups of a counters dict (``CacheStats.as_dict`` keys, possibly summed)."""
    lookups = int(counters.get("cache_lookups", 0) or 0)
    return int(counters.get("cache_hits", 0) or 0) / lookups if lookups else None


# --------------------------------------------------------------------------- segments

SEGMENT = VersionedSchema(
    "llm_cache_segment",
    1,
    pa.schema(
        [
            pa.field("key", pa.string(), nullable=False),  # sha256 hex of (fingerprint, params, messages)
            pa.field("messages", pa.string(), nullable=False),  # canonical JSON list of {role, content}
            pa.field("text", pa.string(), nullable=False),
            pa.field("finish_reason", pa.string()),
            pa.field("prompt_tokens", pa.int64(), nullable=False),
            pa.field("completion_tokens", pa.int64(), nullable=False),
            pa.field("latency_s", pa.float64(), nullable=False),  # of the original call
            pa.field("logprobs", pa.string()),  # JSON list of TokenLogprob, null when not asked
            pa.field("model", pa.string()),
        ]
    ),
)
META_FINGERPRINT = b"trustflow.llm_cache.fingerprint"  # canonical JSON, once per segment
META_PARAMS = b"trustflow.llm_cache.params"
META_NAMESPACE = b"trustflow.llm_cache.namespace"
META_CREATED = b"trustflow.llm_cache.created"
SEGMENT_PREFIX = "seg-"
ROW_GROUP_ROWS = 256  # a hit reads its row group only: ~256 replies, not the whole segment
COMPACT_AFTER = 64  # more small segments than this in a namespace: the next listing merges them
SMALL_SEGMENT_ROWS = 1024  # below this many rows a segment is "small" (a stage chunk of 2,048 is not)
COMPACT_MAX_ROWS = 65536  # rows one compaction pass merges into one segment (bounds its memory)
LEASE_NAME = "_compaction.json"
LEASE_SECONDS = 600.0

_HEX = np.full(256, 255, np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX[_c] = _i


def segment_name() -> str:
    """``seg-<32 hex>.parquet``: 16 hex of the ns clock then 16 random hex, so names sort by
    write time (newer wins among duplicates) and two writers never pick the same name."""
    return f"{SEGMENT_PREFIX}{time.time_ns():016x}{uuid.uuid4().hex[:16]}.parquet"


def _hex_keys(column: pa.ChunkedArray | pa.Array) -> np.ndarray | None:
    """64-hex key strings → an ``S32`` array of their 32 bytes (vectorised; None if any is malformed)."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(arr)
    if n == 0:
        return np.empty(0, "S32")
    if arr.null_count or pc.min_max(pc.binary_length(arr)).as_py() != {"min": 64, "max": 64}:
        return None
    offsets = np.frombuffer(arr.buffers()[1], np.int32, n + 1, arr.offset * 4)
    raw = np.frombuffer(arr.buffers()[2], np.uint8, 64 * n, int(offsets[0])).reshape(n, 64)
    nibbles = _HEX[raw]
    if (nibbles == 255).any():
        return None
    return np.ascontiguousarray((nibbles[:, 0::2] << 4) | nibbles[:, 1::2]).view("S32").reshape(n)


def _key_bytes(keys: Sequence[str]) -> np.ndarray:
    return np.array([bytes.fromhex(k) for k in keys], "S32")


@dataclass
class _Segment:
    """One listed or written segment: where it is, its footer (kept, so a hit reads no footer
    again) and the inputs every row shares."""

    path: str
    size: int
    metadata: pq.FileMetaData
    fingerprint: dict[str, Any]
    params: dict[str, Any]
    bad: bool = False  # its rows failed to read once: its keys are misses from now on

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def rows(self) -> int:
        return int(self.metadata.num_rows)

    def group_starts(self) -> list[int]:
        starts, at = [], 0
        for g in range(self.metadata.num_row_groups):
            starts.append(at)
            at += self.metadata.row_group(g).num_rows
        return starts


class KeyIndex:
    """Every key of one namespace → the (segment, row) places holding it, as sorted Arrow-free
    numpy runs: 32 key bytes + 4 (segment) + 4 (row) = **40 bytes per entry** (440k keys ≈ 18 MB;
    a Python set of the hex strings would take ~110 bytes each). Own writes add a run; runs
    merge like a binary counter (≤ log2 runs, amortised O(n log n)). ``in`` takes hex keys."""

    def __init__(self) -> None:
        self.segments: list[_Segment] = []  # id = position; a higher id is a newer segment
        self._runs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._distinct: int | None = None
        self._lock = threading.Lock()

    def add(self, segment: _Segment, keys: np.ndarray) -> None:
        with self._lock:
            seg_id = len(self.segments)
            self.segments.append(segment)
            order = np.argsort(keys, kind="stable")
            run = (keys[order], np.full(len(keys), seg_id, np.int32), order.astype(np.int32))
            while self._runs and len(self._runs[-1][0]) <= 2 * len(run[0]):
                older = self._runs.pop()
                merged = [np.concatenate([a, b]) for a, b in zip(older, run, strict=True)]
                order = np.argsort(merged[0], kind="stable")
                run = (merged[0][order], merged[1][order], merged[2][order])
            self._runs.append(run)
            self._distinct = None

    def places(self, keys: Sequence[str]) -> dict[str, list[tuple[int, int]]]:
        """(segment id, row) of each key found, newest segment first."""
        if not keys:
            return {}
        query = _key_bytes(keys)
        out: dict[str, list[tuple[int, int]]] = {}
        with self._lock:
            runs = list(self._runs)
        for run_keys, seg_ids, rows in runs:
            lo = np.searchsorted(run_keys, query, "left")
            hi = np.searchsorted(run_keys, query, "right")
            for i in np.nonzero(hi > lo)[0].tolist():
                found = out.setdefault(keys[i], [])
                found.extend((int(seg_ids[j]), int(rows[j])) for j in range(lo[i], hi[i]))
        for found in out.values():
            found.sort(reverse=True)
        return out

    def __contains__(self, key: object) -> bool:
        try:
            return isinstance(key, str) and bool(self.places([key]))
        except ValueError:  # not hex
            return False

    def __len__(self) -> int:
        """Distinct keys (a key in two segments counts once)."""
        with self._lock:
            if self._distinct is None:
                keys = [r[0] for r in self._runs]
                self._distinct = len(np.unique(np.concatenate(keys))) if keys else 0
            return self._distinct

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(a.nbytes for run in self._runs for a in run)


class LLMCache:
    """Segments in ``store`` under ``cache/llm/v2/<namespace>/``; one listing per namespace
    per instance (see the module docstring)."""

    def __init__(
        self, store: ArtifactStore, sampled: bool = False, io_threads: int = 8, compact_after: int = COMPACT_AFTER
    ) -> None:
        self.store = store
        self.sampled = sampled
        self.io_threads = io_threads
        self.compact_after = compact_after
        self._index: dict[str, KeyIndex] = {}
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._owner = uuid.uuid4().hex

    def namespace_dir(self, namespace: str) -> str:
        return self.store.path(*CACHE_ROOT, namespace)

    def segment_files(self, namespace: str) -> list[pafs.FileInfo]:
        """The namespace's segment objects (one LIST), oldest first (names sort by write time)."""
        selector = pafs.FileSelector(self.namespace_dir(namespace), allow_not_found=True)
        infos = self.store.io("llm cache listing", lambda: self.store.fs.get_file_info(selector))
        return sorted(
            (
                i
                for i in infos
                if i.type == pafs.FileType.File
                and i.base_name.startswith(SEGMENT_PREFIX)
                and i.base_name.endswith(".parquet")
            ),
            key=lambda i: i.base_name,
        )

    def keys(self, namespace: str) -> KeyIndex:
        """The namespace's key index: listed once (one LIST, then the key column of each
        segment), then kept current by this instance's own writes."""
        with self._lock:
            found = self._index.get(namespace)
        if found is not None:
            return found
        with self._load_lock:  # one listing per namespace even when threads ask at once
            with self._lock:
                found = self._index.get(namespace)
            if found is not None:
                return found
            index = self._load(namespace)
            if self._small(index) > self.compact_after and self.compact(namespace, index):
                index = self._load(namespace)
            with self._lock:
                return self._index.setdefault(namespace, index)

    def _small(self, index: KeyIndex) -> int:
        return sum(1 for s in index.segments if s.rows < SMALL_SEGMENT_ROWS and not s.bad)

    def _load(self, namespace: str) -> KeyIndex:
        infos = self.segment_files(namespace)

        def open_one(info: pafs.FileInfo) -> tuple[_Segment, np.ndarray] | None:
            try:
                pf = self.store.io(
                    f"llm cache key read of {info.base_name}",
                    functools.partial(pq.ParquetFile, info.path, filesystem=self.store.fs),
                )
                segment = _segment_of(info.path, info.size or 0, pf.metadata, namespace)
                keys = _hex_keys(
                    self.store.io(f"llm cache key read of {info.base_name}", lambda: pf.read(["key"])["key"])
                )
                if keys is None:
                    raise ValueError("malformed keys")
            except FileNotFoundError:  # deleted since the listing (compacted)
                return None
            except (pa.ArrowException, OSError, ValueError, KeyError) as exc:
                log.warning(
                    "llm cache: unreadable segment %s (%s); its entries are misses until rewritten",
                    info.path,
                    " ".join(str(exc).split())[:200],
                )
                return None
            return segment, keys

        index = KeyIndex()
        for opened in self._map(open_one, infos):
            if opened is not None:
                index.add(*opened)
        return index

    def _map(self, fn: Any, items: list[Any]) -> list[Any]:
        """``fn`` over ``items``; on S3 ``io_threads`` at a time (each read is a round trip of
        milliseconds, so segments go in parallel), locally in order."""
        if self.store.location.scheme != "s3" or len(items) < 2 or self.io_threads < 2:
            return [fn(item) for item in items]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(self.io_threads, len(items)), thread_name_prefix="llm-cache") as pool:
            return list(pool.map(fn, items))

    def read_rows(self, segment: _Segment, rows: Sequence[int]) -> pa.Table:
        """``rows`` of ``segment`` in that order: only their row groups, in one ranged read
        (footer kept from the listing, ``pre_buffer`` coalesces the column chunks)."""
        starts = segment.group_starts()
        groups = sorted({bisect.bisect_right(starts, r) - 1 for r in rows})
        base, at = {}, 0
        for g in groups:
            base[g] = at
            at += segment.metadata.row_group(g).num_rows

        def read() -> pa.Table:
            with self.store.fs.open_input_file(segment.path) as src:
                pf = pq.ParquetFile(src, metadata=segment.metadata, pre_buffer=True)
                return pf.read_row_groups(groups)

        table = self.store.io(f"llm cache read of {segment.name}", read, segment.path)
        local = [
            base[bisect.bisect_right(starts, r) - 1] + r - starts[bisect.bisect_right(starts, r) - 1] for r in rows
        ]
        return table.take(pa.array(local, pa.int64()))

    def _try_read(self, job: tuple[_Segment, list[int]]) -> tuple[pa.Table | None, str]:
        """``read_rows`` of one segment, or None and why ("vanished": deleted since the listing)."""
        try:
            return self.read_rows(*job), ""
        except FileNotFoundError:
            return None, "vanished"
        except (pa.ArrowException, OSError, ValueError) as exc:
            return None, " ".join(str(exc).split())[:200]

    def get_many(self, namespace: str, keys: Sequence[str], stats: CacheStats | None = None) -> dict[str, ChatResult]:
        """Valid entries among ``keys``: hits grouped by segment, one read per segment touched;
        a corrupt row or segment is left out with one warning (the next copy of its key, if
        any, is tried). A segment deleted since the listing (compacted) makes this instance
        list the namespace again, once."""
        out: dict[str, ChatResult] = {}
        for attempt in range(2):
            index = self.keys(namespace)
            todo = [k for k in dict.fromkeys(keys) if k not in out]
            places = index.places(todo)
            vanished = False
            while places:
                by_segment: dict[int, list[tuple[str, int]]] = {}
                for key, found in places.items():
                    while found and index.segments[found[0][0]].bad:
                        found.pop(0)
                    if found:
                        seg_id, row = found[0]
                        by_segment.setdefault(seg_id, []).append((key, row))
                if not by_segment:
                    break

                retry: dict[str, list[tuple[int, int]]] = {}
                jobs = [(index.segments[seg_id], [r for _, r in wanted]) for seg_id, wanted in by_segment.items()]
                for seg_id, (table, problem) in zip(by_segment, self._map(self._try_read, jobs), strict=True):
                    segment, wanted = index.segments[seg_id], by_segment[seg_id]
                    if table is None:
                        segment.bad = True
                        if problem == "vanished":
                            vanished = True
                        else:
                            log.warning(
                                "llm cache: unreadable segment %s (%s); its %d wanted entries are misses and rewritten",
                                segment.path,
                                problem,
                                len(wanted),
                            )
                            if stats is not None:
                                stats.add(corrupt=len(wanted))
                        for key, _ in wanted:
                            retry[key] = places[key][1:]
                        continue
                    for (key, _), row in zip(wanted, table.to_pylist(), strict=True):
                        result, problem = _parse_row(row, key, segment)
                        if result is None:
                            log.warning(
                                "llm cache: corrupt entry %s in %s (%s); treated as a miss and rewritten",
                                key,
                                segment.path,
                                problem,
                            )
                            if stats is not None:
                                stats.add(corrupt=1)
                            retry[key] = places[key][1:]
                        else:
                            out[key] = result
                places = {k: v for k, v in retry.items() if v}
            if not vanished or attempt:
                break
            with self._lock:  # compacted under us: list again and look the rest up there
                if self._index.get(namespace) is index:
                    del self._index[namespace]
        return out

    def put(
        self,
        namespace: str,
        key: str,
        fingerprint: Mapping[str, Any],
        config: Mapping[str, Any],
        messages: Sequence[Mapping[str, str]],
        result: ChatResult,
    ) -> None:
        """Write one entry (a segment of one row; callers with many use :meth:`put_many`)."""
        self.put_many([(namespace, key, fingerprint, config, messages, result)])

    def put_many(
        self, entries: Sequence[tuple[str, str, Mapping[str, Any], Mapping[str, Any], Any, ChatResult]]
    ) -> None:
        """Write the entries as **one segment per namespace** (atomic, under a new unique name:
        writers never overwrite each other) and add them to this instance's index."""
        by_namespace: dict[str, dict[str, tuple[Mapping[str, Any], Mapping[str, Any], Any, ChatResult]]] = {}
        for namespace, key, fingerprint, config, messages, result in entries:
            by_namespace.setdefault(namespace, {}).setdefault(key, (fingerprint, config, messages, result))
        for namespace, items in by_namespace.items():
            fingerprint, config = next(iter(items.values()))[:2]
            if namespace_of(fingerprint, config) != namespace:
                raise TrustflowError(f"llm cache: namespace {namespace} is not that of the entries' model and config")
            rows = [_row(key, messages, result) for key, (_, _, messages, result) in items.items()]
            segment, keys = self._write_segment(namespace, dict(fingerprint), dict(config), rows)
            with self._lock:
                index = self._index.get(namespace)
            if index is not None:  # not listed yet: the listing will find the new segment
                index.add(segment, keys)

    def _write_segment(
        self, namespace: str, fingerprint: dict[str, Any], config: dict[str, Any], rows: list[dict[str, Any]]
    ) -> tuple[_Segment, np.ndarray]:
        table = pa.Table.from_pylist(rows, schema=SEGMENT.schema)
        meta = {
            **(SEGMENT.with_metadata().metadata or {}),
            META_FINGERPRINT: canonical_json(fingerprint).encode(),
            META_PARAMS: canonical_json(config).encode(),
            META_NAMESPACE: namespace.encode(),
            META_CREATED: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()).encode(),
        }
        table = table.replace_schema_metadata(meta)
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd", row_group_size=ROW_GROUP_ROWS)
        payload = sink.getvalue()
        path = f"{self.namespace_dir(namespace)}/{segment_name()}"
        self.store.write_bytes_atomic(path, payload.to_pybytes())
        segment = _Segment(path, payload.size, pq.read_metadata(pa.BufferReader(payload)), fingerprint, config)
        keys = _hex_keys(table["key"])
        assert keys is not None  # made by cache_key
        return segment, keys

    def compact(self, namespace: str, index: KeyIndex | None = None, force: bool = False) -> int:
        """Merge the namespace's small segments (oldest first, ≤ ``COMPACT_MAX_ROWS`` rows per
        pass) into one, keeping the newest valid row of each key; returns segments removed.

        Write new, then delete old: a reader that listed an old segment finds it gone, lists
        again and reads the merged one (``get_many``). A best-effort lease object keeps
        concurrent listers from compacting at once; S3 has no create-if-absent, so two may
        still both merge — then the entries sit in two merged segments (still correct; a key
        in two segments is fine), and the old ones are deleted by both (a missing one is
        ignored). A segment that does not read is left alone (never deleted unread)."""
        index = index if index is not None else self._load(namespace)
        small = [s for s in index.segments if s.rows < SMALL_SEGMENT_ROWS and not s.bad]
        if len(small) <= (1 if force else self.compact_after) or not self._take_lease(namespace):
            return 0
        removed = 0
        try:
            while len(small) > (1 if force else self.compact_after):
                batch: list[_Segment] = []
                rows = 0
                for s in small:
                    if batch and rows + s.rows > COMPACT_MAX_ROWS:
                        break
                    batch.append(s)
                    rows += s.rows
                if len(batch) < 2:
                    break
                small = small[len(batch) :]
                kept: dict[str, dict[str, Any]] = {}
                merged: list[_Segment] = []
                for segment in reversed(batch):  # newest first: the newest valid row of a key wins
                    try:
                        table = self.store.io(
                            f"llm cache compaction read of {segment.name}",
                            functools.partial(pq.read_table, segment.path, filesystem=self.store.fs),
                            segment.path,
                        )
                    except FileNotFoundError:
                        merged.append(segment)  # another compactor took it
                        continue
                    except (pa.ArrowException, OSError) as exc:
                        log.warning("llm cache: compaction skips unreadable segment %s (%s)", segment.path, exc)
                        continue
                    for row in table.to_pylist():
                        if row["key"] not in kept and _parse_row(row, row["key"], segment)[0] is not None:
                            kept[row["key"]] = row
                    merged.append(segment)
                if kept:
                    first = merged[0]
                    self._write_segment(namespace, first.fingerprint, first.params, list(kept.values()))
                for segment in merged:
                    with contextlib.suppress(FileNotFoundError):  # another compactor deleted it
                        self.store.io(
                            f"llm cache delete of {segment.name}",
                            functools.partial(self.store.fs.delete_file, segment.path),
                            segment.path,
                        )
                    removed += 1
            log.info("llm cache: compacted %d segments of namespace %s", removed, namespace)
        finally:
            self._drop_lease(namespace)
        return removed

    def _lease_path(self, namespace: str) -> str:
        return f"{self.namespace_dir(namespace)}/{LEASE_NAME}"

    def _read_lease(self, namespace: str) -> dict[str, Any]:
        try:
            lease = json.loads(self.store.read_bytes(self._lease_path(namespace)))
        except (FileNotFoundError, ValueError):
            return {}
        return lease if isinstance(lease, dict) else {}

    def _take_lease(self, namespace: str) -> bool:
        lease = self._read_lease(namespace)
        if lease.get("owner") not in (None, self._owner) and float(lease.get("until", 0)) > time.time():
            return False
        mine = {"owner": self._owner, "until": time.time() + LEASE_SECONDS}
        self.store.write_bytes_atomic(self._lease_path(namespace), canonical_json(mine).encode())
        return self._read_lease(namespace).get("owner") == self._owner

    def _drop_lease(self, namespace: str) -> None:
        if self._read_lease(namespace).get("owner") == self._owner:
            with contextlib.suppress(FileNotFoundError):
                self.store.fs.delete_file(self._lease_path(namespace))


def _segment_of(path: str, size: int, metadata: pq.FileMetaData, namespace: str) -> _Segment:
    """A listed segment after its footer checks: our schema, and inputs that hash to its namespace."""
    meta = metadata.schema.to_arrow_schema().metadata or {}
    if (
        meta.get(SCHEMA_NAME_KEY) != SEGMENT.name.encode()
        or meta.get(SCHEMA_VERSION_KEY) != str(SEGMENT.version).encode()
    ):
        raise ValueError(f"not a {SEGMENT.name} v{SEGMENT.version} segment")
    fingerprint = json.loads(meta[META_FINGERPRINT])
    params = json.loads(meta[META_PARAMS])
    if namespace_of(fingerprint, params) != namespace:
        raise ValueError("its model and config do not hash to its namespace")
    return _Segment(path, size, metadata, fingerprint, params)


def _row(key: str, messages: Any, result: ChatResult) -> dict[str, Any]:
    return {
        "key": key,
        "messages": canonical_json([dict(m) for m in messages]),
        "text": result.text,
        "finish_reason": result.finish_reason,
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "latency_s": result.latency_s,
        "logprobs": None
        if result.logprobs is None
        else canonical_json([t.model_dump(mode="json") for t in result.logprobs]),
        "model": result.model,
    }


def _parse_row(row: Mapping[str, Any], key: str, segment: _Segment) -> tuple[ChatResult | None, str]:
    """The reply of one segment row, if its inputs hash to ``key``."""
    try:
        messages = json.loads(row["messages"])
        if row.get("key") != key or cache_key(segment.fingerprint, segment.params, messages) != key:
            return None, "its inputs do not hash to its key"
        result = ChatResult(
            text=row["text"],
            finish_reason=row["finish_reason"],
            prompt_tokens=row["prompt_tokens"],
            completion_tokens=row["completion_tokens"],
            latency_s=row["latency_s"],
            logprobs=None if row["logprobs"] is None else json.loads(row["logprobs"]),
            model=row["model"],
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return None, f"bad row: {' '.join(str(exc).split())[:200]}"
    return result, ""


# --------------------------------------------------------------------------- the chat wrapper


class CachedBackend(ChatBackend):
    """A backend whose reproducible calls go through an :class:`LLMCache` first.

    Only misses reach the wrapped backend (identical requests within a batch are sent once);
    its ``usage`` meter is shared, so usage and cost count real calls only. ``inner`` may be
    a loader (``lambda: load_backend(spec)``): the model is then loaded on the first miss, so
    a fully cached rerun never loads it. Any other attribute (``model``, ``tokenizer`` for
    hidden-state critics) is the wrapped backend's (and loads it).
    A store failure turns the cache off for this backend with one warning: the run goes on
    uncached rather than failing on a cache.
    """

    def __init__(
        self, inner: ChatBackend | Callable[[], ChatBackend], spec: str, cache: LLMCache, **load_options: Any
    ) -> None:
        loaded = inner if isinstance(inner, ChatBackend) else None
        super().__init__(loaded.usage if loaded is not None else None)
        self._inner = loaded
        self._loader: Callable[[], ChatBackend] | None = None if loaded is not None else cast(Any, inner)
        self._load_lock = threading.Lock()
        self.name = loaded.name if loaded is not None else spec
        self.spec = spec
        self.cache = cache
        self.load_options = load_options
        self.stats = CacheStats()
        self._fingerprint: dict[str, Any] | None = None
        self._off = False

    def __getattr__(self, name: str) -> Any:  # only called for attributes this class lacks
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property
    def loaded(self) -> bool:
        """Whether the wrapped backend exists yet (a loader runs on the first miss)."""
        return self._inner is not None

    @property
    def inner(self) -> ChatBackend:
        if self._inner is None:
            with self._load_lock:
                if self._inner is None:
                    assert self._loader is not None
                    backend = self._loader()
                    self.usage.price_per_1k_prompt = backend.usage.price_per_1k_prompt  # keep its prices
                    self.usage.price_per_1k_completion = backend.usage.price_per_1k_completion
                    backend.usage = self.usage  # one meter: real calls only
                    self._inner = backend
        return self._inner

    @property
    def fingerprint(self) -> dict[str, Any]:
        if self._fingerprint is None:
            # only an openai: spec without #MODEL needs the backend (to ask the server's model id)
            needs_backend = self.spec.strip().startswith("openai:") and "#" not in self.spec
            backend = self.inner if needs_backend else self._inner
            self._fingerprint = model_fingerprint(self.spec, backend, **self.load_options)
        return self._fingerprint

    def _generate(self, requests: list[ChatRequest]) -> list[ChatResult]:  # generate() is overridden
        return self.inner.generate(requests)

    def generate(self, requests: Sequence[ChatRequest | dict[str, Any]]) -> list[ChatResult]:
        reqs = as_requests(requests)
        if not reqs:
            return []
        results: list[ChatResult | None] = [None] * len(reqs)
        plan: dict[int, tuple[str, str, dict[str, Any], list[dict[str, str]]]] = {}
        if not self._off:
            try:
                plan = self._plan(reqs)
                self._lookup(reqs, plan, results)
            except (TrustflowError, OSError) as exc:
                self._turn_off(exc)
                plan, results = {}, [None] * len(reqs)
        self.stats.add(bypassed=len(reqs) - len(plan))
        # misses: each distinct key once, uncacheable requests as they are
        todo: list[int] = []
        first_of: dict[str, int] = {}
        for i, res in enumerate(results):
            if res is not None:
                continue
            key = plan[i][1] if i in plan else None
            if key is not None and key in first_of:
                continue
            if key is not None:
                first_of[key] = i
            todo.append(i)
        fresh = self.inner.generate([reqs[i] for i in todo]) if todo else []
        entries = []
        for i, res in zip(todo, fresh, strict=True):
            results[i] = res
            if i in plan and res.ok and res.finish_reason != "error":
                namespace, key, config, messages = plan[i]
                entries.append((namespace, key, self.fingerprint, config, messages, res))
        if entries and not self._off:
            try:
                self.cache.put_many(entries)
                self.stats.add(writes=len(entries))
            except (TrustflowError, OSError) as exc:
                self._turn_off(exc)
        out: list[ChatResult] = []
        for i, req in enumerate(reqs):
            res = results[i]
            if res is None:  # a duplicate of a key answered in this batch
                res = results[first_of[plan[i][1]]]
                assert res is not None
                res = res.model_copy()
            if req.id is not None:
                res = res.model_copy(update={"id": req.id}) if res.id != req.id else res
            out.append(res)
        return out

    def _plan(self, reqs: list[ChatRequest]) -> dict[int, tuple[str, str, dict[str, Any], list[dict[str, str]]]]:
        plan = {}
        for i, req in enumerate(reqs):
            if not cacheable(req, self.cache.sampled):
                continue
            config = gen_config(req)
            messages = req.message_dicts()
            plan[i] = (
                namespace_of(self.fingerprint, config),
                cache_key(self.fingerprint, config, messages),
                config,
                messages,
            )
        return plan

    def _lookup(
        self, reqs: list[ChatRequest], plan: Mapping[int, tuple[str, str, Any, Any]], results: list[ChatResult | None]
    ) -> None:
        by_namespace: dict[str, list[int]] = {}
        for i, (namespace, _, _, _) in plan.items():
            by_namespace.setdefault(namespace, []).append(i)
        hits = 0
        for namespace, indices in by_namespace.items():
            found = self.cache.get_many(namespace, [plan[i][1] for i in indices], self.stats)
            for i in indices:
                hit = found.get(plan[i][1])
                if hit is not None:
                    results[i] = hit.model_copy(update={"id": reqs[i].id, "cached": True})
                    hits += 1
        self.stats.add(lookups=len(plan), hits=hits)

    def _turn_off(self, exc: BaseException) -> None:
        if not self._off:
            log.warning("llm cache off for %s: the store failed (%s); calls go uncached", self.spec, exc)
        self._off = True

    def counters(self) -> dict[str, int]:
        return self.stats.as_dict()

    def close(self) -> None:
        if self._inner is not None:
            self._inner.close()


def with_cache(
    backend: ChatBackend | Callable[[], ChatBackend], spec: str, cache: LLMCache | None, **load_options: Any
) -> ChatBackend:
    """``backend`` (or the backend a loader builds) behind ``cache``; with ``cache`` None
    (``--no-cache``) the backend itself, loaded now."""
    if cache is None:
        return backend if isinstance(backend, ChatBackend) else backend()
    return CachedBackend(backend, spec, cache, **load_options)


def sum_counters(items: Iterator[Mapping[str, int]] | Sequence[Mapping[str, int]]) -> dict[str, int]:
    """Counters of several cache users added up (Ray actors, several models)."""
    total: dict[str, int] = {}
    for item in items:
        for name, n in item.items():
            if name.startswith("cache_"):
                total[name] = total.get(name, 0) + int(n)
    return total
