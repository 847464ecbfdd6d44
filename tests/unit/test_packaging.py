"""pyproject.toml lists every package folder (the root maps to ``trustflow``), so a wheel or a
non-editable install carries each new plugin package, and lists nothing that is gone."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOT_SHIPPED = ("tests", "benchmarks", ".venv", ".trustflow", "build")


def test_pyproject_lists_exactly_the_package_folders() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(("trustflow", *init.parent.relative_to(ROOT).parts))
        for init in ROOT.rglob("__init__.py")
        if not init.relative_to(ROOT).parts[0].startswith(NOT_SHIPPED)
    }
    assert sorted(on_disk - listed) == [], "package folders missing from pyproject.toml"
    assert sorted(listed - on_disk) == [], "pyproject.toml lists packages that do not exist"
