from __future__ import annotations

from pathlib import Path

import pytest

from trustflow.data.sources import fingerprint, resolve_source
from trustflow.errors import ConfigError, InputError
from trustflow.registry import Registry
from trustflow.settings import load_settings


def test_registry_lists_known_names_on_a_miss() -> None:
    reg: Registry[int] = Registry("widget")
    reg.register("b")(2)
    reg.register("a")(1)
    assert reg.get("a") == 1 and reg.names() == ["a", "b"]
    with pytest.raises(ConfigError, match="unknown widget 'c'; known: a, b"):
        reg.get("c")
    with pytest.raises(ConfigError, match="registered twice"):
        reg.register("a")(3)


def test_fingerprint_follows_bytes_not_timestamps(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.txt").write_text("hello")
    (tmp_path / "d" / ".DS_Store").write_text("ignored")
    first = fingerprint(tmp_path / "d")
    (tmp_path / "d" / "x.txt").write_text("hello")  # same bytes, new mtime
    assert fingerprint(tmp_path / "d") == first
    (tmp_path / "d" / ".DS_Store").write_text("changed but hidden")
    assert fingerprint(tmp_path / "d") == first
    (tmp_path / "d" / "x.txt").write_text("hellp")
    assert fingerprint(tmp_path / "d") != first


def test_resolve_source_errors(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path)
    with pytest.raises(InputError, match="no such file or directory"):
        resolve_source(str(tmp_path / "absent"), settings)
    with pytest.raises(InputError, match="unsupported scheme 'ftp'"):
        resolve_source("ftp://host/file.zip", settings)
    assert resolve_source(str(tmp_path), settings) == tmp_path.resolve()


def test_dataset_kinds_are_discovered_and_take_their_options() -> None:
    """Each module of tasks/ingest/kinds/ is a kind; only COCO takes ``on_invalid``."""
    from trustflow.tasks.ingest import INGESTERS

    assert {"coco", "imagefolder", "seval"} <= set(INGESTERS.names())
    _, options = INGESTERS.resolve("coco?on_invalid=drop")
    assert options.on_invalid == "drop"
    with pytest.raises(ConfigError, match="dataset kind 'coco': option 'on_invalid'"):
        INGESTERS.resolve("coco", on_invalid="skip")
    with pytest.raises(ConfigError, match="dataset kind 'seval': unknown option 'on_invalid'"):
        INGESTERS.create("seval", on_invalid="drop")


def test_event_sources_are_discovered_and_reject_options_they_do_not_take(tmp_path: Path) -> None:
    from trustflow.infra.event_relay.sources import make_source, source_names

    assert source_names() == ["local", "s3", "seaweedfs"]
    settings = load_settings()
    source = make_source("local", settings, root=tmp_path, prefix="in/", queue_url=None)  # None: not given
    assert (source.name, source.root, source.prefix) == ("local", tmp_path.resolve(), "in/")
    with pytest.raises(ConfigError, match="event source 'local': unknown option 'queue_url'"):
        make_source("local", settings, root=tmp_path, queue_url="https://sqs.example/q")
    with pytest.raises(ConfigError, match="--source s3 needs --queue-url"):
        make_source("s3", settings)
