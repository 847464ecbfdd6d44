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
