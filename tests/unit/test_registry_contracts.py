"""The registry contract, checked over every entry of every registry the package defines
(the torchattacks way: a new plugin is tested by being registered, not by a new test).

For each entry: its example spec (the bare name unless the entry registered one) resolves
with its options model; an unknown option is a ConfigError naming the entry and the option;
the canonical spec round-trips to equal options; and where the registry has a factory,
the entry builds from that spec.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import pytest

import trustflow
from trustflow.errors import ConfigError
from trustflow.registry import Registry, all_registries, parse_spec

_SKIP_IMPORT = ("trustflow.tests", "trustflow.benchmarks")


def _import_package() -> None:
    """Import every module of the package, so every registry exists and is filled."""
    for module in pkgutil.walk_packages(trustflow.__path__, "trustflow."):
        if not module.name.startswith(_SKIP_IMPORT) and ".tests." not in module.name:
            importlib.import_module(module.name)


_import_package()
REGISTRIES: list[Registry[Any]] = all_registries()
ENTRIES = [(reg, name) for reg in REGISTRIES for name in reg.names()]
IDS = [f"{reg.what}:{name}" for reg, name in ENTRIES]


def test_the_package_defines_its_registries() -> None:
    kinds = {reg.what for reg in REGISTRIES}
    assert len(REGISTRIES) >= 15, kinds
    assert all(reg.names() for reg in REGISTRIES), [r.what for r in REGISTRIES if not r.names()]


@pytest.mark.parametrize(("reg", "name"), ENTRIES, ids=IDS)
def test_entry_resolves_from_its_example(reg: Registry[Any], name: str) -> None:
    entry, options = reg.resolve(reg.example(name))
    assert entry.name == name
    assert isinstance(options, entry.options)


@pytest.mark.parametrize(("reg", "name"), ENTRIES, ids=IDS)
def test_entry_rejects_an_unknown_option_by_name(reg: Registry[Any], name: str) -> None:
    with pytest.raises(ConfigError, match=rf"{name}.*unknown option 'no_such_option'"):
        reg.resolve(f"{reg.example(name)}{'&' if '?' in reg.example(name) else '?'}no_such_option=1")


@pytest.mark.parametrize(("reg", "name"), ENTRIES, ids=IDS)
def test_entry_spec_round_trips(reg: Registry[Any], name: str) -> None:
    _, options = reg.resolve(reg.example(name))
    canonical = reg.spec(name, options)
    assert parse_spec(canonical).name == name
    assert reg.resolve(canonical)[1] == options


@pytest.mark.parametrize(
    ("reg", "name"),
    [(r, n) for r, n in ENTRIES if r.factory],
    ids=[i for (r, _), i in zip(ENTRIES, IDS, strict=True) if r.factory],
)
def test_entry_builds_from_its_example(reg: Registry[Any], name: str) -> None:
    assert reg.create(reg.example(name)) is not None
