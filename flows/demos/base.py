"""The demo's pipeline registry: ``trustflow demo --pipelines NAME[,NAME…]`` runs the named
entries in registry order of ``DEFAULT_ORDER`` first, then by name.

Adding a pipeline to the demo is one module in this package with one decorated function::

    @DEMO_PIPELINES.register("mine")
    def mine_demo(ctx: DemoContext) -> dict[str, Any]:
        ...  # call the pipeline's flows on small embedded inputs; return what to print

The returned dict may hold ``datasets`` (dataset infos that landed, printed as a table);
``cli/demo.py`` prints the rest with the printer registered under the same name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from trustflow.errors import InputError
from trustflow.registry import Registry

DemoStep = Callable[["DemoContext"], dict[str, Any]]
DEMO_PIPELINES: Registry[DemoStep] = Registry("demo pipeline", plugins="trustflow.flows.demos")
# what `trustflow demo` runs without --pipelines (the provenance trace is opt-in)
DEFAULT_PIPELINES = ("seval", "robust-vision", "detector")


@dataclass(frozen=True)
class DemoContext:
    """What the demo's start-up prepared for the pipelines (``cli/demo.py``)."""

    store_url: str
    seval_dir: str | None = None
    faces_dir: str | None = None


def select_pipelines(names: Sequence[str] | None) -> list[str]:
    """The pipelines to run, in a stable order (defaults first, then by name); unknown names
    are an ``InputError`` naming the option and the known pipelines."""
    chosen = list(DEFAULT_PIPELINES) if names is None else [n.strip() for n in names if n.strip()]
    known = DEMO_PIPELINES.names()
    bad = [n for n in chosen if n not in known]
    if bad or not chosen:
        raise InputError(f"--pipelines {','.join(bad) or '(empty)'}: known pipelines are {', '.join(known)}")
    rank = {n: i for i, n in enumerate(DEFAULT_PIPELINES)}
    return sorted(dict.fromkeys(chosen), key=lambda n: (rank.get(n, len(rank)), n))
