"""Cross-run LLM response cache: keys, hits and misses, bypass, segments, concurrent writers,
corruption, compaction."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from trustflow.data.store import ArtifactStore
from trustflow.models.llm.base import ChatBackend, ChatRequest, ChatResult
from trustflow.models.llm.cache import (
    CachedBackend,
    LLMCache,
    cache_key,
    files_digest,
    gen_config,
    model_fingerprint,
    namespace_of,
    with_cache,
)

SPEC = "openai:http://127.0.0.1:9/v1#fake-model"  # fingerprinted from the spec alone: no server needed


class CountingBackend(ChatBackend):
    """Answers deterministically from the conversation and counts every request it receives."""

    name = "counting"

    def __init__(self, fail_on: str | None = None) -> None:
        super().__init__()
        self.requests: list[ChatRequest] = []
        self.fail_on = fail_on
        self.model = "fake-model"

    def _generate(self, requests: list[ChatRequest]) -> list[ChatResult]:
        self.requests.extend(requests)
        out = []
        for r in requests:
            last = r.messages[-1].content
            if self.fail_on is not None and last == self.fail_on:
                out.append(ChatResult.failed("boom", r))
            else:
                reply = f"reply to {last} ({len(r.messages)} turns, t={r.temperature}, n={r.max_tokens})"
                out.append(ChatResult(text=reply, finish_reason="stop", prompt_tokens=3, completion_tokens=5))
        return out


def _store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(f"file://{tmp_path / 'store'}")


def _reqs(prompts: list[str], **params: object) -> list[ChatRequest]:
    return [ChatRequest.of(p, id=f"id-{i}", **params) for i, p in enumerate(prompts)]


def _cached(store: ArtifactStore, inner: ChatBackend | None = None, sampled: bool = False) -> CachedBackend:
    backend = with_cache(inner or CountingBackend(), SPEC, LLMCache(store, sampled=sampled))
    assert isinstance(backend, CachedBackend)
    return backend


def test_identical_rerun_is_all_hits_and_never_calls_the_backend(tmp_path: Path) -> None:
    store = _store(tmp_path)
    prompts = [f"prompt {i}" for i in range(6)]
    first_inner = CountingBackend()
    first = _cached(store, first_inner).generate(_reqs(prompts, max_tokens=16))
    assert len(first_inner.requests) == 6 and not any(r.cached for r in first)

    second_inner = CountingBackend()  # a new process: new backend, new cache object, same store
    second_backend = _cached(store, second_inner)
    second = second_backend.generate(_reqs(prompts, max_tokens=16))
    assert second_inner.requests == []
    assert second_backend.stats.hit_rate == 1.0 and second_backend.stats.hits == 6
    assert [r.text for r in second] == [r.text for r in first]
    assert [r.id for r in second] == [f"id-{i}" for i in range(6)]
    assert all(r.cached for r in second)
    assert second_inner.usage.requests == 0  # usage and cost count real calls only


def test_a_fully_cached_rerun_never_loads_the_model(tmp_path: Path) -> None:
    store = _store(tmp_path)
    _cached(store).generate(_reqs(["a", "b"]))
    loads: list[CountingBackend] = []

    def load() -> CountingBackend:
        loads.append(CountingBackend())
        return loads[-1]

    lazy = with_cache(load, SPEC, LLMCache(store))
    assert isinstance(lazy, CachedBackend) and not lazy.loaded
    assert [r.cached for r in lazy.generate(_reqs(["a", "b"]))] == [True, True]
    assert loads == [] and not lazy.loaded  # 100 % hits: no model load at all
    lazy.generate(_reqs(["c"]))
    assert len(loads) == 1 and len(loads[0].requests) == 1 and lazy.usage is loads[0].usage
    assert lazy.usage.requests == 1  # the shared meter counts the one real call
    assert isinstance(with_cache(load, SPEC, None), CountingBackend)  # --no-cache: loaded at once


def test_a_changed_generation_field_or_message_misses(tmp_path: Path) -> None:
    store = _store(tmp_path)
    _cached(store).generate(_reqs(["a", "b"], max_tokens=16))
    inner = CountingBackend()
    backend = _cached(store, inner)
    backend.generate(_reqs(["a", "b"], max_tokens=17))  # one generation field differs
    backend.generate(_reqs(["a", "b"], max_tokens=16, stop=["\n"]))
    backend.generate(_reqs(["a", "c"], max_tokens=16))  # one message differs
    multi = ChatRequest.of(
        [{"role": "user", "content": "b"}, {"role": "assistant", "content": "x"}, {"role": "user", "content": "b"}],
        max_tokens=16,
    )
    backend.generate([multi])  # the whole conversation is keyed, not only its last turn
    assert [r.messages[-1].content for r in inner.requests] == ["a", "b", "a", "b", "c", "b"]
    assert backend.stats.hits == 1 and backend.stats.lookups == 7  # only "a" at max_tokens 16 again


def test_key_covers_fingerprint_config_and_messages_canonically() -> None:
    fp = {"kind": "http", "base_url": "http://h/v1", "model": "m"}
    cfg = gen_config(ChatRequest.of("x", max_tokens=8))
    msgs = [{"role": "user", "content": "hi"}]
    key = cache_key(fp, cfg, msgs)
    assert key == cache_key(dict(reversed(list(fp.items()))), dict(reversed(list(cfg.items()))), msgs)
    assert key != cache_key({**fp, "model": "m2"}, cfg, msgs)
    assert key != cache_key(fp, {**cfg, "seed": 1}, msgs)
    assert key != cache_key(fp, cfg, [{"role": "system", "content": "hi"}])
    assert "id" not in cfg and namespace_of(fp, cfg) != namespace_of(fp, {**cfg, "top_p": 0.5})


def test_no_cache_bypasses(tmp_path: Path) -> None:
    store = _store(tmp_path)
    _cached(store).generate(_reqs(["a"]))
    inner = CountingBackend()
    assert with_cache(inner, SPEC, None) is inner  # --no-cache: the backend itself, no lookup at all
    inner.generate(_reqs(["a"]))
    assert len(inner.requests) == 1


def test_unseeded_sampling_is_not_cached_unless_asked(tmp_path: Path) -> None:
    store = _store(tmp_path)
    inner = CountingBackend()
    backend = _cached(store, inner)
    backend.generate(_reqs(["a"], temperature=0.7))
    backend.generate(_reqs(["a"], temperature=0.7))
    assert len(inner.requests) == 2 and backend.stats.bypassed == 2 and backend.stats.lookups == 0
    backend.generate(_reqs(["a"], temperature=0.7, seed=3))
    backend.generate(_reqs(["a"], temperature=0.7, seed=3))
    assert len(inner.requests) == 3  # seeded sampling is reproducible: cached
    opted = _cached(store, inner, sampled=True)
    opted.generate(_reqs(["b"], temperature=0.7))
    opted.generate(_reqs(["b"], temperature=0.7))
    assert len(inner.requests) == 4 and opted.stats.hits == 1


def test_failures_are_not_cached_and_duplicates_in_a_batch_are_sent_once(tmp_path: Path) -> None:
    store = _store(tmp_path)
    inner = CountingBackend(fail_on="bad")
    backend = _cached(store, inner)
    out = backend.generate(_reqs(["bad", "same", "same"]))
    assert out[0].error == "boom" and out[1].text == out[2].text and [r.id for r in out] == ["id-0", "id-1", "id-2"]
    assert [r.messages[-1].content for r in inner.requests] == ["bad", "same"]
    backend.generate(_reqs(["bad"]))
    assert len(inner.requests) == 3  # the failure is asked again, not served from the cache


def _ns() -> str:
    return namespace_of(model_fingerprint(SPEC), gen_config(_reqs(["x"])[0]))


def test_two_writers_of_one_key_leave_valid_segments_and_one_answer(tmp_path: Path) -> None:
    store = _store(tmp_path)
    fp = {"kind": "http", "base_url": "u", "model": "m"}
    cfg = gen_config(ChatRequest.of("x"))
    msgs = [{"role": "user", "content": "x"}]
    key, ns = cache_key(fp, cfg, msgs), namespace_of(fp, cfg)
    caches = [LLMCache(store) for _ in range(8)]
    barrier = threading.Barrier(len(caches))

    def write(i: int) -> None:
        barrier.wait()
        for _ in range(5):
            caches[i].put(ns, key, fp, cfg, msgs, ChatResult(text=f"writer {i} " + "x" * 5000, finish_reason="stop"))

    threads = [threading.Thread(target=write, args=(i,)) for i in range(len(caches))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    folder = Path(caches[0].namespace_dir(ns))
    names = sorted(p.name for p in folder.iterdir())
    assert len(names) == 40 and all(n.startswith("seg-") and n.endswith(".parquet") for n in names)  # no temp files
    found = LLMCache(store).get_many(ns, [key])
    assert found[key].text.startswith("writer ") and len(found[key].text) == 5000 + len("writer 0 ")
    assert len(LLMCache(store).keys(ns)) == 1  # one key, however many segments hold it


def test_one_flush_of_many_entries_is_one_object(tmp_path: Path) -> None:
    store = _store(tmp_path)
    backend = _cached(store)
    backend.generate(_reqs([f"prompt {i}" for i in range(1000)], max_tokens=16))
    assert backend.stats.writes == 1000
    objects = [p for p in Path(store.path("cache")).rglob("*") if p.is_file()]
    assert len(objects) == 1 and objects[0].name.startswith("seg-")  # not 1,000 objects
    index = LLMCache(store).keys(namespace_of(model_fingerprint(SPEC), gen_config(_reqs(["x"], max_tokens=16)[0])))
    assert len(index) == 1000 and index.nbytes == 40 * 1000  # 32 key bytes + segment + row per entry


def test_hits_read_their_rows_from_the_right_segment_once(tmp_path: Path) -> None:
    store = _store(tmp_path)
    writer = _cached(store)
    first = writer.generate(_reqs([f"a{i}" for i in range(300)]))
    second = writer.generate(_reqs([f"b{i}" for i in range(300)]))
    segments = LLMCache(store).segment_files(_ns())
    assert len(segments) == 2
    cache = LLMCache(store)
    reads: list[tuple[str, list[int]]] = []
    real = cache.read_rows

    def spy(segment: Any, rows: Sequence[int]) -> pa.Table:
        reads.append((segment.name, list(rows)))
        return real(segment, rows)

    cache.read_rows = spy  # type: ignore[method-assign]
    inner = CountingBackend()
    reader = with_cache(inner, SPEC, cache)
    wanted = [5, 280, 17]
    out = reader.generate([ChatRequest.of(f"b{i}") for i in wanted])
    assert inner.requests == [] and [r.text for r in out] == [second[i].text for i in wanted]
    assert reads == [(segments[1].base_name, wanted)]  # one read, of the second flush's segment only
    out = reader.generate([ChatRequest.of("a3"), ChatRequest.of("b3")])
    assert [r.text for r in out] == [first[3].text, second[3].text]
    assert sorted(name for name, _ in reads[1:]) == sorted(s.base_name for s in segments)  # one read per segment


def test_two_writers_write_two_segments_and_a_reader_sees_both(tmp_path: Path) -> None:
    store = _store(tmp_path)
    writers = [_cached(store), _cached(store)]
    barrier = threading.Barrier(2)

    def run(i: int) -> None:
        barrier.wait()
        writers[i].generate(_reqs([f"w{i} p{j}" for j in range(20)]))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(LLMCache(store).segment_files(_ns())) == 2
    inner = CountingBackend()
    reader = _cached(store, inner)
    out = reader.generate(_reqs([f"w{i} p{j}" for i in range(2) for j in range(20)]))
    assert inner.requests == [] and reader.stats.hits == 40 and all(r.cached for r in out)


def test_a_tampered_entry_is_a_miss_with_a_warning_then_superseded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = _store(tmp_path)
    expected = [r.text for r in _cached(store).generate(_reqs(["a", "b"]))]
    (info,) = LLMCache(store).segment_files(_ns())
    table = pq.read_table(info.path)
    messages = table["messages"].to_pylist()
    messages[0] = messages[0].replace('"a"', '"tampered"')  # no longer hashes to its key
    table = table.set_column(1, table.schema.field(1), pa.array(messages, pa.string()))
    pq.write_table(table, info.path)
    inner = CountingBackend()
    backend = _cached(store, inner)
    with caplog.at_level(logging.WARNING, logger="trustflow.models.llm.cache"):
        out = backend.generate(_reqs(["a", "b"]))
    assert [r.text for r in out] == expected
    assert len(inner.requests) == 1 and backend.stats.corrupt == 1 and backend.stats.hits == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "corrupt entry" in warnings[0] and "treated as a miss" in warnings[0]
    again = CountingBackend()
    assert _cached(store, again).generate(_reqs(["a", "b"])) and again.requests == []  # the new segment wins


def test_a_corrupt_segment_is_misses_with_one_warning_then_superseded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = _store(tmp_path)
    first = _cached(store)
    expected = [r.text for r in first.generate(_reqs(["a", "b", "c"]))]
    (info,) = LLMCache(store).segment_files(_ns())
    raw = Path(info.path).read_bytes()
    Path(info.path).write_bytes(raw[: len(raw) // 2])  # torn: no footer
    inner = CountingBackend()
    backend = _cached(store, inner)
    with caplog.at_level(logging.WARNING, logger="trustflow.models.llm.cache"):
        out = backend.generate(_reqs(["a", "b", "c"]))
    assert [r.text for r in out] == expected and len(inner.requests) == 3 and backend.stats.hits == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "unreadable segment" in warnings[0] and "misses" in warnings[0]
    again = CountingBackend()
    assert _cached(store, again).generate(_reqs(["a", "b", "c"])) and again.requests == []  # rewritten


def test_compaction_keeps_every_entry_and_leaves_fewer_objects(tmp_path: Path) -> None:
    store = _store(tmp_path)
    writer = _cached(store)
    expected: dict[str, str] = {}
    for flush in range(10):
        prompts = [f"f{flush} p{j}" for j in range(7)] + ["shared"]  # "shared" lands in every segment
        expected.update(zip(prompts, (r.text for r in writer.generate(_reqs(prompts))), strict=True))
    ns = _ns()
    assert len(LLMCache(store).segment_files(ns)) == 10
    early = LLMCache(store)  # a reader that listed the 10 segments before the compaction
    assert len(early.keys(ns)) == 71
    compactor = LLMCache(store, compact_after=4)
    index = compactor.keys(ns)  # more than 4 small segments: the listing merges them
    files = LLMCache(store).segment_files(ns)
    assert len(files) == 1 and len(index) == 71 and len(index.segments) == 1
    assert pq.read_metadata(files[0].path).num_rows == 71  # duplicates of "shared" merged into one row
    assert not (Path(compactor.namespace_dir(ns)) / "_compaction.json").exists()  # lease released
    for cache in (compactor, early):  # the early reader finds its segments gone, lists again, hits
        inner = CountingBackend()
        backend = with_cache(inner, SPEC, cache)
        out = backend.generate(_reqs(list(expected)))
        assert inner.requests == [] and [r.text for r in out] == list(expected.values())


def test_a_failing_store_turns_the_cache_off_instead_of_failing_the_call(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = _store(tmp_path)
    inner = CountingBackend()
    backend = _cached(store, inner)

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk gone")

    backend.cache.keys = broken  # type: ignore[method-assign,assignment]
    with caplog.at_level(logging.WARNING, logger="trustflow.models.llm.cache"):
        out = backend.generate(_reqs(["a"]))
        backend.generate(_reqs(["a"]))
    assert out[0].ok and len(inner.requests) == 2 and backend.stats.bypassed == 2
    assert sum("llm cache off" in r.getMessage() for r in caplog.records) == 1


def test_wrapper_forwards_model_attributes(tmp_path: Path) -> None:
    backend = _cached(_store(tmp_path))
    assert backend.model == "fake-model"  # hidden-state critics read backend.model / .tokenizer
    with pytest.raises(AttributeError):
        _ = backend.tokenizer


def test_fingerprints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert model_fingerprint(SPEC) == {"kind": "http", "base_url": "http://127.0.0.1:9/v1", "model": "fake-model"}
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"\x00" * 100)
    first = model_fingerprint(f"hf:{model}")
    assert first["kind"] == "local" and first == model_fingerprint(f"hf:{model}")
    assert first != model_fingerprint(f"hf:{model}", dtype="bfloat16")
    (model / "model.safetensors").write_bytes(b"\x01" * 100)  # same size, new weights
    assert model_fingerprint(f"hf:{model}") != first
    assert files_digest(model) != files_digest(model, "config.json")


def test_rerun_hits_on_s3_and_parallel_writers_leave_one_entry(s3_settings: object) -> None:
    """The same cache on SeaweedFS: one listing, parallel GETs/PUTs, same answers, no backend call."""
    store = ArtifactStore(settings=s3_settings)  # type: ignore[arg-type]
    prompts = [f"prompt {i}" for i in range(10)]
    first = _cached(store).generate(_reqs(prompts))
    writers = [_cached(store) for _ in range(3)]  # three workers answer the same batch at once
    threads = [threading.Thread(target=w.generate, args=(_reqs(["shared"]),)) for w in writers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    inner = CountingBackend()
    again = _cached(store, inner)
    out = again.generate(_reqs([*prompts, "shared"]))
    assert inner.requests == [] and again.stats.hits == 11
    assert [r.text for r in out[:10]] == [r.text for r in first]
    assert len(LLMCache(store).keys(_ns())) == 11  # the shared key counts once
    assert len(LLMCache(store).segment_files(_ns())) == 4  # one segment per flush: 1 + 3 writers
    compacted = LLMCache(store, compact_after=2).keys(_ns())  # merged on S3: write new, delete old
    assert len(compacted) == 11 and len(LLMCache(store).segment_files(_ns())) == 1
    out = again.generate(_reqs([*prompts, "shared"]))  # listed the 4 deleted segments: lists again
    assert inner.requests == [] and again.stats.hits == 22 and [r.text for r in out[:10]] == [r.text for r in first]
