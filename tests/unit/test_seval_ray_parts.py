"""The shared "missing keys → chunks" helpers of tasks/ray_parts.py (no Ray needed)."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from trustflow.data.schemas import VersionedSchema
from trustflow.data.store import ArtifactStore, StageRef
from trustflow.tasks.ray_parts import PartSlice, StoreSpec, chunked, missing_chunks, payload_rows, source_chunks


def test_chunked_by_index_and_by_key() -> None:
    items = list(range(7))
    by_index = chunked(items, 3, "t", payload=lambda b: ("meta", b))
    assert [c.part_id for c in by_index] == ["t-000000", "t-000001", "t-000002"]
    assert [c.payload for c in by_index] == [("meta", [0, 1, 2]), ("meta", [3, 4, 5]), ("meta", [6])]
    by_key = chunked(items, 3, "t", key=str)
    digest = hashlib.sha256(b"0\x001\x002").hexdigest()[:12]
    assert by_key[0].part_id == f"t-{digest}" and by_key[0].payload == [0, 1, 2]
    assert chunked([], 3, "t") == []


class FakeWriter:
    """Holds keys 'a' and 'c' already."""

    def missing(self, table: pa.Table) -> pa.Table:
        return table.filter(pc.invert(pc.is_in(table["k"], value_set=pa.array(["a", "c"]))))


def test_missing_chunks_only_carry_new_rows() -> None:
    keyed = pa.table({"k": ["a", "b", "c", "d", "e"], "v": [1, 2, 3, 4, 5], "extra": ["x"] * 5})
    writer: Any = FakeWriter()
    chunks = missing_chunks(writer, keyed, ["k", "v"], 2, "tag", "k")
    assert [payload_rows(c.payload) for c in chunks] == [[{"k": "b", "v": 2}, {"k": "d", "v": 4}], [{"k": "e", "v": 5}]]
    assert chunks[1].part_id == "tag-" + hashlib.sha256(b"e").hexdigest()[:12]
    # payloads are compact tables: pickling one does not carry its parent's buffers
    assert all(isinstance(c.payload, pa.Table) for c in chunks)


def test_missing_chunks_grow_to_max_parts_but_not_past_max_rows() -> None:
    keys = [f"{i:05d}" for i in range(1000)]
    keyed = pa.table({"k": keys, "v": list(range(1000))})
    writer: Any = FakeWriter()
    small = missing_chunks(writer, keyed.slice(0, 40), ["k"], 8, "t", "k", max_parts=64)
    assert [len(payload_rows(c.payload)) for c in small] == [8] * 5  # a small run keeps its batch-sized parts
    grown = missing_chunks(writer, keyed, ["k"], 8, "t", "k", max_parts=10)
    sizes = [c.payload.num_rows for c in grown]
    assert len(grown) <= 10 and sum(sizes) == writer.missing(keyed).num_rows and max(sizes) == 100
    capped = missing_chunks(writer, keyed, ["k"], 8, "t", "k", max_parts=2, max_rows=128)
    assert max(c.payload.num_rows for c in capped) == 128
    rows = [r["k"] for c in grown for r in payload_rows(c.payload)]
    assert rows == writer.missing(keyed)["k"].to_pylist()  # order kept, nothing lost or repeated
    assert len(pickle.dumps(grown[0].payload)) < len(pickle.dumps(keyed)) / 3


# ---------------------------------------------------------------- streamed sources (source_chunks)

SOURCE = VersionedSchema("src_test", 1, pa.schema([("k", pa.string()), ("grp", pa.string()), ("text", pa.string())]))
OUTPUT = VersionedSchema("out_test", 1, pa.schema([("k", pa.string()), ("model", pa.string()), ("n", pa.int64())]))


def _source(tmp_path: Path, parts: list[list[int]]) -> tuple[ArtifactStore, StageRef]:
    """A committed source stage whose parts hold rows k00.. (grp a/b alternating)."""
    store = ArtifactStore(f"file://{tmp_path / 'store'}")
    ref = StageRef("f", "r", "src")
    writer = store.writer(ref, SOURCE, ["k"])
    for i, rows in enumerate(parts):
        keys = [f"k{r:02d}" for r in rows]
        table = pa.table({"k": keys, "grp": ["ab"[r % 2] for r in rows], "text": [f"text {k}" for k in keys]})
        writer.write_part(table, f"p{i}")
    writer.commit()
    return store, ref


def test_source_chunks_carry_only_missing_rows_as_slices(tmp_path: Path) -> None:
    store, src = _source(tmp_path, [list(range(0, 10)), list(range(10, 16))])
    out = store.writer(StageRef("f", "r", "out"), OUTPUT, ["k", "model"])
    out.write_part(pa.table({"k": ["k01", "k12"], "model": ["m", "m"], "n": [0, 0]}), "done")
    out.write_part(pa.table({"k": ["k02"], "model": ["other"], "n": [0]}), "other")  # another model: not done
    chunks, selected = source_chunks(store, src, out, ["k", "text"], 4, "t", "k", constants={"model": "m"})
    assert selected == 16
    rows = [payload_rows(c.payload) for c in chunks]
    # chunks of 4 that never span the two source parts; k01 and k12 are answered already
    assert [[r["k"] for r in chunk] for chunk in rows] == [
        ["k00", "k02", "k03", "k04"],
        ["k05", "k06", "k07", "k08"],
        ["k09"],
        ["k10", "k11", "k13", "k14"],
        ["k15"],
    ]
    assert rows[0][0] == {"k": "k00", "text": "text k00"}  # the asked columns only, read by the worker
    assert all(isinstance(c.payload, PartSlice) for c in chunks)
    assert chunks[2].part_id == "t-" + hashlib.sha256(b"k09").hexdigest()[:12]
    again, _ = source_chunks(store, src, out, ["k", "text"], 4, "t", "k", constants={"model": "m"})
    assert [c.part_id for c in again] == [c.part_id for c in chunks]  # same rows, same part names


def test_source_chunks_filter_and_grow(tmp_path: Path) -> None:
    store, src = _source(tmp_path, [list(range(0, 40))])
    out = store.writer(StageRef("f", "r", "out"), OUTPUT, ["k", "model"])
    chunks, selected = source_chunks(
        store, src, out, ["k", "grp"], 2, "t", "k", constants={"model": "m"}, where=("grp", ["b"]), max_parts=4
    )
    assert selected == 20
    got = [r for c in chunks for r in payload_rows(c.payload)]
    assert [r["k"] for r in got] == [f"k{i:02d}" for i in range(1, 40, 2)] and {r["grp"] for r in got} == {"b"}
    assert [len(payload_rows(c.payload)) for c in chunks] == [10, 10]  # 40 source rows / 4 parts


def test_part_slice_reads_only_the_row_groups_that_hold_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "big.parquet"
    table = pa.table({"i": list(range(1000)), "s": [f"row {i}" for i in range(1000)]})
    pq.write_table(table, path, row_group_size=100)
    store = ArtifactStore(f"file://{tmp_path / 'store'}")
    rows = pa.array([250, 251, 399, 400], pa.int32())
    piece = PartSlice(StoreSpec.of(store), str(path), rows, ("s",))
    assert piece.read()["s"].to_pylist() == ["row 250", "row 251", "row 399", "row 400"]
    assert len(pickle.dumps(piece)) < 2_000  # a path and four ints travel, not the rows
    read_groups: list[list[int]] = []
    original = pq.ParquetFile.read_row_groups

    def spy(self: Any, groups: list[int], *args: Any, **kwargs: Any) -> pa.Table:
        read_groups.append(list(groups))
        return original(self, groups, *args, **kwargs)

    pq.ParquetFile.read_row_groups = spy  # type: ignore[method-assign]
    try:
        assert piece.read()["s"].to_pylist()[-1] == "row 400"
    finally:
        pq.ParquetFile.read_row_groups = original  # type: ignore[method-assign]
    assert read_groups == [[2, 3, 4]]


def test_source_chunks_size_ignores_rows_of_other_constants(tmp_path: Path) -> None:
    """A second model of the same stage still gets grown parts (the first model's rows are not its own)."""
    store, src = _source(tmp_path, [list(range(0, 40))])
    out = store.writer(StageRef("f", "r", "out"), OUTPUT, ["k", "model"])
    keys = [f"k{i:02d}" for i in range(40)]
    out.write_part(pa.table({"k": keys, "model": ["first"] * 40, "n": [0] * 40}), "first")
    chunks, _ = source_chunks(store, src, out, ["k"], 2, "t", "k", constants={"model": "second"}, max_parts=4)
    assert [len(payload_rows(c.payload)) for c in chunks] == [10, 10, 10, 10]
