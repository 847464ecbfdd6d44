"""Selection strategies for building S-Eval-style test suites (issue 4).

Every strategy is one module of this package registered with ``@SELECTORS.register("name")``;
the modules are imported the first time :data:`SELECTORS` is asked for a name, so adding a
strategy is adding one module. A suite is built by :func:`run_pipeline` from a list of specs
such as::

    [{"name": "minhash_dedup"}, {"name": "quality"}, {"name": "near_dedup", "threshold": 0.9},
     {"name": "on_target"}, {"name": "hardness", "min_hardness": 0.2},
     {"name": "diversity", "k": 20}, {"name": "balance", "per_group": 10}]

and identified by :func:`pipeline_hash` of those specs.
"""

from __future__ import annotations

from trustflow.tasks.seval.selection.base import (
    REQUIRED_COLUMNS,
    SELECTORS,
    SelectionContext,
    SelectionResult,
    StageReport,
    Strategy,
    StrategyOptions,
    build_pipeline,
    canonical_specs,
    pipeline_hash,
    run_pipeline,
)
from trustflow.tasks.seval.selection.embeddings import E5Embedder, Embedder, HashingEmbedder

__all__ = [
    "REQUIRED_COLUMNS",
    "SELECTORS",
    "E5Embedder",
    "Embedder",
    "HashingEmbedder",
    "SelectionContext",
    "SelectionResult",
    "StageReport",
    "Strategy",
    "StrategyOptions",
    "build_pipeline",
    "canonical_specs",
    "pipeline_hash",
    "run_pipeline",
]
