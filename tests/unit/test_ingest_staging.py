"""Staging an ingestion source into the store (tasks/ingest/staging.py), without Ray: the
upload (content-addressed, skip what is there), the worker-side rewrite of chunk payloads to
a node-local copy, and the mapping of that copy's paths back in built rows and errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pyarrow as pa
import pytest

from trustflow.data.loaders.imagefolder import FolderImage
from trustflow.data.loaders.masked import MaskedFile
from trustflow.data.sources import fingerprint
from trustflow.data.store import ArtifactStore
from trustflow.errors import InputError
from trustflow.settings import load_settings
from trustflow.tasks.ingest.staging import (
    CACHE_ENV,
    StagedBuilder,
    StagingPlan,
    localise,
    source_staging,
    stage_source,
    staged,
    wants_staging,
)


def _source(root: Path) -> Path:
    (root / "cat").mkdir(parents=True)
    (root / "dog").mkdir()
    (root / "cat" / "a.jpg").write_bytes(b"cat-a" * 10)
    (root / "cat" / "b.jpg").write_bytes(b"cat-b")
    (root / "dog" / "c.jpg").write_bytes(b"dog-c" * 3)
    (root / "notes.json").write_text('{"x": 1}')
    (root / ".DS_Store").write_bytes(b"hidden")
    return root


@pytest.fixture()
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(f"file://{tmp_path / 'store'}", load_settings(home=tmp_path / "home"))


@pytest.fixture()
def node_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "node-cache"
    monkeypatch.setenv(CACHE_ENV, str(cache))
    return cache


def test_stage_uploads_each_data_file_once_and_a_rerun_uploads_nothing(store: ArtifactStore, tmp_path: Path) -> None:
    src = _source(tmp_path / "src")
    fp = fingerprint(src)
    staged_src, stats = stage_source(store, src, fp)
    assert stats == {"files": 4, "uploaded": 4, "bytes_uploaded": 50 + 5 + 15 + 8}
    files = Path(store.location.root) / "staging" / fp / "files"
    assert sorted(p.relative_to(files).as_posix() for p in files.rglob("*") if p.is_file()) == [
        "cat/a.jpg",
        "cat/b.jpg",
        "dog/c.jpg",
        "notes.json",
    ]  # the hidden file is no data (the fingerprint skips it too)
    assert (files / "cat" / "a.jpg").read_bytes() == b"cat-a" * 10
    assert stage_source(store, src, fp)[1]["uploaded"] == 0
    # an interrupted staging (no manifest yet) resumes: only what is missing is uploaded
    (Path(store.location.root) / "staging" / fp / "manifest.json").unlink()
    (files / "dog" / "c.jpg").unlink()
    again, stats = stage_source(store, src, fp)
    assert stats["uploaded"] == 1 and stats["bytes_uploaded"] == 15 and again == staged_src
    assert not [p for p in Path(store.location.root).rglob(".tmp-*")]


def test_payload_paths_are_rewritten_to_the_node_copy_and_only_those_files_fetched(
    store: ArtifactStore, tmp_path: Path, node_cache: Path
) -> None:
    src = _source(tmp_path / "src")
    staged_src, _ = stage_source(store, src, fingerprint(src))
    note = f"{src}/notes.json: annotation id 3"
    payload = (
        "cat",
        [FolderImage(src / "cat" / "a.jpg", "cat/a.jpg", "train", "cat")],
        {"label_ids": {"cat": 0}, "where": note, "file": str(src / "notes.json")},
        7,
    )
    src.rename(tmp_path / "gone")  # the driver's copy is away: only the store has the bytes
    assert staged_src.prefetch(payload) == 2 and staged_src.prefetch(payload) == 0  # in parallel, once
    local = localise(payload, staged_src)
    image = local[1][0]
    assert isinstance(image, FolderImage) and image.path.read_bytes() == b"cat-a" * 10
    assert image.path.is_relative_to(node_cache) and image.relpath == "cat/a.jpg"
    assert local[2]["where"] == note  # text that merely starts with the root is left alone
    assert Path(local[2]["file"]).read_text() == '{"x": 1}' and local[2]["label_ids"] is payload[2]["label_ids"]
    fetched = sorted(p.name for p in node_cache.rglob("*") if p.is_file())
    assert fetched == ["a.jpg", "notes.json"]  # b.jpg and dog/ are not this chunk's
    # frozen dataclass with two paths: both rewritten; a folder path fetches what lies beneath
    pair = localise([MaskedFile("dog/c", "dog", src / "dog" / "c.jpg", src / "dog")], staged_src)[0]
    assert pair.image.read_bytes() == b"dog-c" * 3 and (pair.mask / "c.jpg").is_file()
    with pytest.raises(InputError, match=r"\.DS_Store: not in the staged copy"):
        localise(src / ".DS_Store", staged_src)


def test_untouched_payload_is_returned_as_is(store: ArtifactStore, tmp_path: Path, node_cache: Path) -> None:
    src = _source(tmp_path / "src")
    staged_src, _ = stage_source(store, src, fingerprint(src))
    payload = (1, 2, 64, (0.1, 0.2), {"backgrounds": ("flat",)})  # synthetic-objects: no paths at all
    assert localise(payload, staged_src) is payload and not node_cache.exists()


@dataclasses.dataclass(frozen=True)
class _Recorder:
    """A builder that records where its file was and fails on a marker file (picklable)."""

    def __call__(self, paths: list[Path]) -> pa.Table:
        for p in paths:
            if p.read_bytes() == b"cat-b":
                raise InputError(f"{p}: image is 1x1 but the annotations say 2x2")
        return pa.table({"source": [str(p) for p in paths], "size": [p.stat().st_size for p in paths]})


def test_built_rows_and_errors_name_the_source_not_the_node_copy(
    store: ArtifactStore, tmp_path: Path, node_cache: Path
) -> None:
    src = _source(tmp_path / "src")
    staged_src, _ = stage_source(store, src, fingerprint(src))
    builder = StagedBuilder(_Recorder(), staged_src)
    table = builder([src / "cat" / "a.jpg", src / "dog" / "c.jpg"])
    assert table.to_pydict() == {"source": [str(src / "cat" / "a.jpg"), str(src / "dog" / "c.jpg")], "size": [50, 15]}
    with pytest.raises(InputError) as err:
        builder([src / "cat" / "b.jpg"])
    assert str(err.value).startswith(f"{src}/cat/b.jpg: image is 1x1") and str(node_cache) not in str(err.value)


def test_single_file_source(store: ArtifactStore, tmp_path: Path, node_cache: Path) -> None:
    one = tmp_path / "data.jsonl"
    one.write_text('{"q": 1}\n')
    staged_src, stats = stage_source(store, one, fingerprint(one))
    assert stats["uploaded"] == 1 and staged_src.single
    local = localise({"path": one}, staged_src)["path"]
    assert local.name == "data.jsonl" and local.read_text() == '{"q": 1}\n' and local.is_relative_to(node_cache)
    assert localise(tmp_path / "data.jsonl.bak", staged_src) == tmp_path / "data.jsonl.bak"


def test_modes_and_lazy_staging(store: ArtifactStore, tmp_path: Path) -> None:
    assert wants_staging("always", None) and not wants_staging("never", "ray://head:10001")
    assert wants_staging("auto", "ray://head:10001")  # joined by address: workers may be elsewhere
    with pytest.raises(InputError, match="ingest.stage_sources must be"):
        wants_staging("sometimes", None)
    src = _source(tmp_path / "src")

    def build(payload: object) -> pa.Table:
        return pa.table({"n": [1]})

    assert staged(build) is build  # outside an ingest: nothing staged
    never = StagingPlan(store, src, fingerprint(src), "never")
    with source_staging(never):
        assert staged(build) is build
    assert never.stats == {"files": 0, "uploaded": 0, "bytes_uploaded": 0}
    always = StagingPlan(store, src, fingerprint(src), "always")
    with source_staging(always):
        wrapped = staged(build)
        assert isinstance(wrapped, StagedBuilder) and wrapped.builder is build
        assert always.stats is not None and always.stats["uploaded"] == 4
        staged(build)  # a second fan-out of the same ingest stages nothing again
    assert always.stats["uploaded"] == 4
    assert staged(build) is build


def test_seval_chunk_reads_the_staged_archive(store: ArtifactStore, tmp_path: Path, node_cache: Path) -> None:
    """The S-Eval kind's payload (a ``SevalFile`` per chunk) builds the same rows from the copy."""
    from trustflow.data.loaders.seval import find_seval_files, read_seval_file

    src = tmp_path / "seval"
    src.mkdir()
    (src / "S-Eval_base_risk_en_tiny.jsonl").write_text(
        '{"traceid": "a", "risk_type": "X", "prompt": "p1", "ext": "{}"}\n'
        '{"traceid": "b", "risk_type": "Y", "prompt": "p2", "ext": "{}"}\n'
    )
    (spec,) = find_seval_files(src)
    plain = read_seval_file(spec)
    staged_src, _ = stage_source(store, src, fingerprint(src))
    src.rename(tmp_path / "gone")
    assert StagedBuilder(read_seval_file, staged_src)(spec).equals(plain) and plain.num_rows == 2


def test_named_tuples_keep_their_type(store: ArtifactStore, tmp_path: Path, node_cache: Path) -> None:
    from typing import NamedTuple

    class Job(NamedTuple):
        path: Path
        width: int

    src = _source(tmp_path / "src")
    staged_src, _ = stage_source(store, src, fingerprint(src))
    job = localise(Job(src / "cat" / "b.jpg", 5), staged_src)
    assert type(job) is Job and job.width == 5 and job.path.read_bytes() == b"cat-b"
