from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from trustflow.data.schemas import SCHEMA_NAME_KEY, SCHEMA_VERSION_KEY, VersionedSchema
from trustflow.data.store import ArtifactStore, StageRef
from trustflow.errors import InputError, StageNotFound, StoreError

ITEMS = VersionedSchema(
    "test_items", 2, pa.schema([pa.field("key", pa.string(), nullable=False), pa.field("value", pa.int64())])
)
ITEMS_V3 = VersionedSchema("test_items", 3, ITEMS.schema)


def rows(keys: list[str]) -> pa.Table:
    return pa.table({"key": keys, "value": [len(k) * 10 + i for i, k in enumerate(keys)]})


@pytest.fixture()
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(f"file://{tmp_path / 'store'}")


REF = StageRef("unitflow", "run-1", "items")


def test_stage_is_invisible_until_commit(store: ArtifactStore) -> None:
    w = store.writer(REF, ITEMS, ["key"])
    w.write_part(rows(["a", "b"]))
    assert store.manifest(REF) is None
    with pytest.raises(StageNotFound, match="unitflow/run-1/items"):
        store.read_table(REF)
    manifest = w.commit({"note": "x"})
    assert manifest.rows == 2 and manifest.schema_version == 2
    assert sorted(store.read_table(REF)["key"].to_pylist()) == ["a", "b"]


def test_anti_join_skips_written_keys_and_keeps_order(store: ArtifactStore) -> None:
    w = store.writer(REF, ITEMS, ["key"])
    w.write_part(rows(["b", "d"]))
    todo = w.missing(rows(["e", "d", "c", "b", "a"]))
    assert todo["key"].to_pylist() == ["e", "c", "a"]
    w.write_part(todo)
    assert w.commit().rows == 5
    assert w.missing(rows(["a", "z"]))["key"].to_pylist() == ["z"]


def test_write_stage_twice_never_duplicates(store: ArtifactStore) -> None:
    store.write_stage(REF, ITEMS, rows(["a", "b", "c"]), ["key"])
    again = store.write_stage(REF, ITEMS, rows(["a", "b", "c", "d"]), ["key"])
    assert again.rows == 4
    assert sorted(store.read_table(REF)["key"].to_pylist()) == ["a", "b", "c", "d"]


def test_commit_refuses_duplicate_keys(store: ArtifactStore) -> None:
    w = store.writer(REF, ITEMS, ["key"])
    w.write_part(rows(["a", "b"]))
    w.write_part(rows(["b"]))  # bypassing missing(): two writers racing would do this
    with pytest.raises(StoreError, match="duplicate keys"):
        w.commit()
    assert store.manifest(REF) is None


def test_commit_checks_multi_column_keys_by_hash_and_confirms_on_the_real_keys(
    store: ArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Several key columns are checked as one 64-bit hash per row (flat driver memory); a
    duplicate is still refused, and a hash collision does not refuse distinct keys."""
    from trustflow.data.store import artifact_store

    both = ["key", "value"]
    w = store.writer(REF, ITEMS, both)
    w.write_part(pa.table({"key": ["a", "a"], "value": [1, 2]}), part_id="ours")
    store.writer(REF, ITEMS, both).write_part(pa.table({"key": ["a"], "value": [2]}), part_id="theirs")
    with pytest.raises(StoreError, match="1 duplicate keys"):
        w.commit()
    store.writer(REF, ITEMS, both).write_part(pa.table({"key": ["b"], "value": [2]}), part_id="theirs")
    # every row hashes alike: only the exact re-check on the real keys can tell they are distinct
    monkeypatch.setattr(artifact_store, "_key_digest", lambda keys: np.zeros(keys.num_rows, np.int64))
    fresh = store.writer(REF, ITEMS, both)
    assert fresh.commit().rows == 3


def test_commit_finds_duplicates_between_its_own_parts_and_another_writers(store: ArtifactStore) -> None:
    """The committing writer checks its own parts from memory and reads only the others' keys:
    a duplicate across the two kinds, or a part replaced on storage since, is still found."""
    ours = store.writer(REF, ITEMS, ["key"])
    ours.write_part(rows(["a", "b"]), part_id="ours")
    store.writer(REF, ITEMS, ["key"]).write_part(rows(["c", "b"]), part_id="theirs")
    with pytest.raises(StoreError, match="1 duplicate keys"):
        ours.commit()
    assert store.manifest(REF) is None

    other = StageRef("unitflow", "run-2", "items")
    first = store.writer(other, ITEMS, ["key"])
    first.write_part(rows(["x"]), part_id="p1")
    first.write_part(rows(["y"]), part_id="p2")
    # another writer replaces p2 (same name) with rows that repeat p1's key
    store.writer(other, ITEMS, ["key"]).write_part(rows(["x", "zz"]), part_id="p2")
    with pytest.raises(StoreError, match="duplicate keys"):
        first.commit()
    store.writer(other, ITEMS, ["key"]).write_part(rows(["zz"]), part_id="p2")
    assert first.commit().rows == 2
    assert sorted(store.read_table(other)["key"].to_pylist()) == ["x", "zz"]


def test_composite_keys_are_checked_with_nulls_as_one_value(store: ArtifactStore) -> None:
    pairs = VersionedSchema("test_pairs", 1, pa.schema([pa.field("a", pa.string()), pa.field("b", pa.int64())]))
    w = store.writer(REF, pairs, ["a", "b"])
    w.write_part(pa.table({"a": ["x", "x", None], "b": [1, 2, 1]}))
    w.write_part(pa.table({"a": ["y", None], "b": [1, 1]}, schema=pairs.schema))
    with pytest.raises(StoreError, match="1 duplicate keys"):
        w.commit()


def test_readers_see_only_manifest_parts(store: ArtifactStore) -> None:
    w = store.writer(REF, ITEMS, ["key"])
    w.write_part(rows(["a"]))
    w.commit()
    w.write_part(rows(["b"]))  # an orphan part from an unfinished re-run
    assert store.read_table(REF)["key"].to_pylist() == ["a"]
    w.commit()
    assert sorted(store.read_table(REF)["key"].to_pylist()) == ["a", "b"]


def test_parts_carry_schema_name_and_version(store: ArtifactStore, tmp_path: Path) -> None:
    store.write_stage(REF, ITEMS, rows(["a"]), ["key"])
    part = next((tmp_path / "store" / "runs" / "unitflow" / "run-1" / "items" / "parts").glob("part-*.parquet"))
    meta = pq.read_schema(part).metadata
    assert meta[SCHEMA_NAME_KEY] == b"test_items" and meta[SCHEMA_VERSION_KEY] == b"2"
    manifest = json.loads((part.parent.parent / "_manifest.json").read_text())
    assert manifest["schema_name"] == "test_items" and manifest["rows"] == 1


def test_schema_version_mismatch_is_refused(store: ArtifactStore) -> None:
    store.write_stage(REF, ITEMS, rows(["a"]), ["key"])
    with pytest.raises(StoreError, match="expected test_items v3"):
        store.writer(REF, ITEMS_V3, ["key"]).commit()
    assert store.require_manifest(REF).schema_version == 2  # the old manifest is intact


def test_batch_missing_a_column_names_it(store: ArtifactStore) -> None:
    with pytest.raises(StoreError, match=r"lacks columns \['value'\]"):
        store.writer(REF, ITEMS, ["key"]).write_part(pa.table({"key": ["a"]}))


def test_wrong_type_names_the_schema(store: ArtifactStore) -> None:
    with pytest.raises(StoreError, match="does not fit schema test_items"):
        store.writer(REF, ITEMS, ["key"]).write_part(pa.table({"key": ["a"], "value": ["not-an-int"]}))


def test_empty_stage_keeps_its_schema(store: ArtifactStore) -> None:
    store.writer(REF, ITEMS, ["key"]).commit()
    table = store.read_table(REF)
    assert table.num_rows == 0 and table.schema.names == ["key", "value"]


def test_no_temp_files_left_behind(store: ArtifactStore, tmp_path: Path) -> None:
    store.write_stage(REF, ITEMS, rows(["a", "b"]), ["key"])
    leftovers = [p for p in (tmp_path / "store").rglob("*") if p.name.startswith(".tmp-")]
    assert leftovers == []


def test_listing_and_finding_runs(store: ArtifactStore) -> None:
    store.write_stage(StageRef("f1", "r1", "a"), ITEMS, rows(["x"]), ["key"])
    store.write_stage(StageRef("f1", "r1", "b"), ITEMS, rows(["x", "y"]), ["key"])
    store.write_stage(StageRef("f2", "r2", "a"), ITEMS, rows(["x"]), ["key"])
    store.writer(StageRef("f2", "r3", "unfinished"), ITEMS, ["key"]).write_part(rows(["q"]))
    listed = {str(ref): m.rows for ref, m in store.list_stages()}
    assert listed == {"f1/r1/a": 1, "f1/r1/b": 2, "f2/r2/a": 1}
    assert [str(r) for r, _ in store.list_stages(flow="f1", run_id="r1")] == ["f1/r1/a", "f1/r1/b"]
    assert store.find_runs("r2") == [("f2", "r2")]
    assert store.find_runs("f1/r1") == [("f1", "r1")]


@pytest.mark.parametrize("bad", ["../escape", "a/b", "", "x" * 201])
def test_unsafe_names_are_rejected(bad: str) -> None:
    with pytest.raises(StoreError, match="invalid"):
        StageRef("flow", bad, "stage")


@pytest.mark.parametrize("url", ["http://x", "file://relative/path", "s3://"])
def test_bad_store_urls(url: str) -> None:
    with pytest.raises(StoreError, match="store URL"):
        ArtifactStore(url)


HOSTILE_KEYS = [
    "../../x",
    "../outside.txt",
    "a/../../x",
    "/etc/passwd",
    "a//b",
    "./a",
    "a/./b",
    "a\\..\\..\\x",
    "a\x00b",
]


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_keys_outside_the_store_are_refused_for_reads_and_writes(tmp_path: Path, key: str) -> None:
    """``path`` confines every key: a hostile one is an InputError naming it, never a file
    outside the root read or written (the canary beside the store stays unread and intact)."""
    canary = tmp_path / "outside.txt"
    canary.write_text("canary")
    store = ArtifactStore(f"file://{tmp_path / 'store'}")
    with pytest.raises(InputError, match="store key") as err:
        store.read_bytes(store.path(key))
    assert repr(key) in str(err.value)
    with pytest.raises(InputError, match="store key"):
        store.write_bytes_atomic(store.path(key), b"overwritten")
    assert canary.read_text() == "canary"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outside.txt", "store"]


def test_hand_built_paths_outside_the_root_are_refused(tmp_path: Path) -> None:
    (tmp_path / "outside.txt").write_text("canary")
    store = ArtifactStore(f"file://{tmp_path / 'store'}")
    for path in (str(tmp_path / "outside.txt"), f"{store.location.root}/../outside.txt"):
        with pytest.raises(InputError, match="store key"):
            store.read_bytes(path)
        with pytest.raises(InputError, match="store key"):
            store.write_bytes_atomic(path, b"x")
    assert (tmp_path / "outside.txt").read_text() == "canary"


def test_symlinks_out_of_the_root_are_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("canary")
    store = ArtifactStore(f"file://{tmp_path / 'store'}")
    root = Path(store.location.root)
    (root / "models").mkdir()
    (root / "models" / "link.pt").symlink_to(outside / "secret.txt")
    (root / "escape").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InputError, match="'models/link.pt'.*symlink"):
        store.read_bytes(store.path("models/link.pt"))
    with pytest.raises(InputError, match="symlink"):
        store.read_bytes(store.path("escape", "secret.txt"))
    with pytest.raises(InputError, match="symlink"):
        store.write_bytes_atomic(store.path("escape", "new.txt"), b"x")
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    # a symlink that stays inside the store is fine
    (root / "models" / "real.pt").write_bytes(b"weights")
    (root / "models" / "alias.pt").symlink_to(root / "models" / "real.pt")
    assert store.read_bytes(store.path("models/alias.pt")) == b"weights"


def test_ordinary_keys_still_work(tmp_path: Path) -> None:
    store = ArtifactStore(f"file://{tmp_path / 'store'}")
    store.write_bytes_atomic(store.path("models", "a-b_c.d/x.yaml"), b"ok")
    assert store.read_bytes(store.path("models/a-b_c.d/x.yaml")) == b"ok"
    assert store.path("models/") == store.path("models")
    assert store.path() == store.location.root


def test_iter_parts_reads_a_stage_one_part_at_a_time(store: ArtifactStore) -> None:
    import pyarrow.compute as pc

    w = store.writer(REF, ITEMS, ["key"])
    w.write_part(rows(["a", "bb"]), part_id="1")
    w.write_part(rows(["ccc", "dd", "e"]), part_id="2")
    w.write_part(rows(["zzzz"]), part_id="3")
    assert w.commit().rows == 6
    w.write_part(rows(["later"]), part_id="4")  # on storage but not in the manifest: not read
    parts = list(store.iter_parts(REF, columns=["key"], filter=pc.field("value") >= 20))
    assert len(parts) == 3 and all(p.column_names == ["key"] for p in parts)
    assert sorted(k for p in parts for k in p["key"].to_pylist()) == ["bb", "ccc", "dd", "zzzz"]
