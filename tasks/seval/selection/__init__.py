"""Selection strategies for building S-Eval-style test suites (issue 4).

Importing this package imports every strategy module, which registers each strategy in
:data:`SELECTORS`; adding a strategy is adding one module (and one import line here). A suite
is built by :func:`run_pipeline` from a list of specs such as::

    [{"name": "minhash_dedup"}, {"name": "quality"}, {"name": "near_dedup", "threshold": 0.9},
     {"name": "on_target"}, {"name": "hardness", "min_hardness": 0.2},
     {"name": "diversity", "k": 20}, {"name": "balance", "per_group": 10}]

and identified by :func:`pipeline_hash` of those specs.
"""

from __future__ import annotations

from trustflow.tasks.seval.selection import balance, dedup, diversity, hardness, on_target, quality  # noqa: E402,I001
from trustflow.tasks.seval.selection.base import (
    REQUIRED_COLUMNS,
    SELECTORS,
    SelectionContext,
    SelectionResult,
    StageReport,
    Strategy,
    StrategyConfig,
    build_pipeline,
    canonical_specs,
    pipeline_hash,
    register_strategy,
    run_pipeline,
)
from trustflow.tasks.seval.selection.diversity import coverage_radius  # noqa: E402
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
    "StrategyConfig",
    "balance",
    "build_pipeline",
    "canonical_specs",
    "coverage_radius",
    "dedup",
    "diversity",
    "hardness",
    "on_target",
    "pipeline_hash",
    "quality",
    "register_strategy",
    "run_pipeline",
]
