"""The shared "missing keys → chunks" helper of tasks/ray_parts.py (no Ray needed)."""

from __future__ import annotations

import hashlib
import pickle
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from trustflow.tasks.ray_parts import chunked, missing_chunks, payload_rows


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
