"""The layer rule, enforced: imports inside the package only point down.

    cli (7) → flows (6) → tasks (5) → models (4) → infra (3) → data (2)
        → base modules (1): settings, errors, registry, names, progress, trustflow/__init__

Every ``.py`` module of the package (tests and benchmarks excepted) is parsed with ``ast``;
every ``import trustflow.…`` / ``from trustflow… import …`` counts, at module level and inside
functions (a deferred import is still a dependency), relative imports resolved. An import of
a higher layer fails the test with the file, the line and both layers; imports within one
layer are fine.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "trustflow"
ROOT = Path(__file__).resolve().parents[2]  # the repository root is the package
SKIP = ("tests", "benchmarks")
LAYERS = {"cli": 7, "flows": 6, "tasks": 5, "models": 4, "infra": 3, "data": 2}
BASE = {"settings", "errors", "registry", "names", "progress", "__init__"}
RULE = "cli → flows → tasks → models → infra → data → {settings, errors, registry, names, progress}"


@dataclass(frozen=True)
class Arrow:
    path: str
    line: int
    source: str
    target: str


def layer_of(module: str) -> tuple[str, int]:
    """(layer name, rank) of a dotted ``trustflow`` module name."""
    parts = module.split(".")
    assert parts[0] == PACKAGE, module
    head = parts[1] if len(parts) > 1 else "__init__"
    if head in LAYERS:
        return head, LAYERS[head]
    if head in BASE:
        return "base", 1
    raise AssertionError(
        f"{module}: top-level module {head!r} has no layer; add it to LAYERS or BASE in {Path(__file__).name}"
    )


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = [PACKAGE, *rel.parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules() -> list[Path]:
    return sorted(
        p
        for p in ROOT.rglob("*.py")
        if p.relative_to(ROOT).parts[0] not in SKIP and not any(part.startswith(".") for part in p.parts)
    )


def imported_modules(tree: ast.AST, this: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, dotted name) of every ``trustflow`` module the tree imports, anywhere in it."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == PACKAGE]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = this.split(".") if is_package else this.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] != PACKAGE:
                continue
            if module == PACKAGE:  # ``from trustflow import names``: the names are the modules
                found += [(node.lineno, f"{PACKAGE}.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, module))
    return sorted(found)  # ast.walk goes breadth first: report in line order


def upward_imports() -> list[Arrow]:
    arrows = []
    for path in package_modules():
        this = module_name(path)
        _, rank = layer_of(this)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, target in imported_modules(tree, this, path.name == "__init__.py"):
            if layer_of(target)[1] > rank:
                arrows.append(Arrow(str(path.relative_to(ROOT)), line, this, target))
    return arrows


def describe(arrow: Arrow) -> str:
    (src, src_rank), (dst, dst_rank) = layer_of(arrow.source), layer_of(arrow.target)
    return f"{arrow.path}:{arrow.line}: {src} (layer {src_rank}) imports {arrow.target} ({dst}, layer {dst_rank})"


def test_the_walk_sees_the_package() -> None:
    names = {module_name(p) for p in package_modules()}
    assert len(names) > 100, len(names)
    assert {"trustflow.cli.main", "trustflow.flows.ingest", "trustflow.registry"} <= names
    assert not any(n.startswith(("trustflow.tests", "trustflow.benchmarks")) for n in names)


def test_function_level_and_relative_imports_are_seen() -> None:
    tree = ast.parse(
        "import os\n"
        "from trustflow import names\n"
        "def f():\n"
        "    from trustflow.cli.common import console\n"
        "    import trustflow.flows.demo\n"
        "from . import sibling\n"
        "from ..data import schemas\n"
    )
    found = [m for _, m in imported_modules(tree, "trustflow.tasks.ingest.stages", is_package=False)]
    assert found == [
        "trustflow.names",
        "trustflow.cli.common",
        "trustflow.flows.demo",
        "trustflow.tasks.ingest",
        "trustflow.tasks.data",
    ]
    assert [layer_of(m)[1] for m in found] == [1, 7, 6, 5, 5]


def test_imports_only_point_down() -> None:
    arrows = upward_imports()
    if arrows:
        lines = "\n  ".join(describe(a) for a in arrows)
        pytest.fail(
            f"{len(arrows)} upward import(s); the layer rule is {RULE} (same-layer imports are fine).\n"
            f"Move the imported code down a layer, or the importing code up:\n  {lines}",
            pytrace=False,
        )
