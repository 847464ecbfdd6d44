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

Layout (one small JSON object per key, see ``docs/pipelines/seval.md``)::

    cache/llm/v1/<namespace>/<key[:2]>/<key>.json

``namespace`` = sha256(fingerprint, generation config)[:20]: one model under one config.
The first lookup in a namespace lists that prefix once (one S3 LIST per 1,000 entries) and
keeps the key set in memory; afterwards a miss costs no request at all and a hit one GET
(a batch's GETs and PUTs go ``io_threads`` at a time on S3).
Each entry is written whole (local: temp file + rename; S3: one PUT), so two workers writing
the same key leave one valid entry (both wrote the same answer's key, the last one wins).
An entry that does not parse or whose inputs do not hash to its key is a miss with one
warning, and is overwritten by the fresh reply.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from trustflow.data.store import ArtifactStore
from trustflow.errors import TrustflowError
from trustflow.models.llm.base import ChatBackend, ChatRequest, ChatResult, GenParams, as_requests

log = logging.getLogger(__name__)

CACHE_ROOT = ("cache", "llm", "v1")
ENTRY_FORMAT = "trustflow.llm_cache"
ENTRY_VERSION = 1
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


class LLMCache:
    """Entries in ``store`` under ``cache/llm/v1/``; one listing per namespace per instance."""

    def __init__(self, store: ArtifactStore, sampled: bool = False, io_threads: int = 8) -> None:
        self.store = store
        self.sampled = sampled
        self.io_threads = io_threads
        self._index: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def _dir(self, namespace: str) -> str:
        return self.store.path(*CACHE_ROOT, namespace)

    def entry_path(self, namespace: str, key: str) -> str:
        return self.store.path(*CACHE_ROOT, namespace, key[:2], f"{key}.json")

    def keys(self, namespace: str) -> set[str]:
        """Keys present in ``namespace``: listed once (a recursive listing), then kept current
        by this instance's own writes."""
        with self._lock:
            found = self._index.get(namespace)
            if found is not None:
                return found
        import pyarrow.fs as pafs

        selector = pafs.FileSelector(self._dir(namespace), recursive=True, allow_not_found=True)
        infos = self.store.io("llm cache listing", lambda: self.store.fs.get_file_info(selector))
        listed = {
            i.base_name[: -len(".json")]
            for i in infos
            if i.type == pafs.FileType.File and i.base_name.endswith(".json") and not i.base_name.startswith(".")
        }
        with self._lock:
            return self._index.setdefault(namespace, listed)

    def _map(self, fn: Any, items: list[Any]) -> list[Any]:
        """``fn`` over ``items``; on S3 ``io_threads`` at a time (each GET/PUT is a round trip
        of milliseconds, so a batch's entries go in parallel), locally in order."""
        if self.store.location.scheme != "s3" or len(items) < 2 or self.io_threads < 2:
            return [fn(item) for item in items]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(self.io_threads, len(items)), thread_name_prefix="llm-cache") as pool:
            return list(pool.map(fn, items))

    def get_many(self, namespace: str, keys: Sequence[str], stats: CacheStats | None = None) -> dict[str, ChatResult]:
        """Valid entries among ``keys``; a corrupt one is left out with one warning."""
        present = self.keys(namespace)
        wanted = [key for key in dict.fromkeys(keys) if key in present]

        def read(key: str) -> tuple[str, bytes | None]:
            try:
                return key, self.store.read_bytes(self.entry_path(namespace, key))
            except FileNotFoundError:  # removed since the listing
                return key, None

        out: dict[str, ChatResult] = {}
        for key, raw in self._map(read, wanted):
            if raw is None:
                continue
            result, problem = _parse_entry(raw, key)
            if result is None:
                log.warning(
                    "llm cache: corrupt entry %s (%s); treated as a miss and rewritten",
                    self.entry_path(namespace, key),
                    problem,
                )
                if stats is not None:
                    stats.add(corrupt=1)
                continue
            out[key] = result
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
        """Write one entry whole (atomic); a concurrent writer of the same key leaves one valid entry."""
        self.put_many([(namespace, key, fingerprint, config, messages, result)])

    def put_many(
        self, entries: Sequence[tuple[str, str, Mapping[str, Any], Mapping[str, Any], Any, ChatResult]]
    ) -> None:
        """Write several entries (on S3 in parallel), each whole."""
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

        def write(item: tuple[str, str, Mapping[str, Any], Mapping[str, Any], Any, ChatResult]) -> None:
            namespace, key, fingerprint, config, messages, result = item
            entry = {
                "format": ENTRY_FORMAT,
                "version": ENTRY_VERSION,
                "key": key,
                "fingerprint": dict(fingerprint),
                "params": dict(config),
                "messages": [dict(m) for m in messages],
                "result": result.model_dump(mode="json", exclude={"id", "cached"}),
                "created": created,
            }
            self.store.write_bytes_atomic(self.entry_path(namespace, key), canonical_json(entry).encode())

        self._map(write, list(entries))
        with self._lock:
            for namespace, key, *_ in entries:
                self._index.setdefault(namespace, set()).add(key)


def _parse_entry(raw: bytes, key: str) -> tuple[ChatResult | None, str]:
    try:
        entry = json.loads(raw)
    except ValueError as exc:
        return None, f"not JSON: {exc}"
    if not isinstance(entry, dict) or entry.get("format") != ENTRY_FORMAT or entry.get("version") != ENTRY_VERSION:
        return None, "not a v1 cache entry"
    try:
        recomputed = cache_key(entry["fingerprint"], entry["params"], entry["messages"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return None, f"missing inputs: {exc}"
    if entry.get("key") != key or recomputed != key:
        return None, "its inputs do not hash to its key"
    try:
        result = ChatResult.model_validate(entry["result"])
    except (KeyError, ValueError) as exc:
        return None, f"bad result: {' '.join(str(exc).split())[:200]}"
    if result.error is not None:
        return None, "holds a failed call"
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
