"""What every selection strategy shares: the context, the result, the registry, the pipeline.

A *selection strategy* narrows a DataFrame of candidate prompts (one row per prompt, columns
``prompt_uid``, ``prompt``, ``lang``, ``leaf_id`` and optionally ``hardness``) to the rows worth
putting in an S-Eval-style test suite. Each strategy is one class in one module, registered
with ``@SELECTORS.register("name")`` in :data:`SELECTORS` (every module of this package is
imported on first lookup); its options are a pydantic model (``Options``) with ``extra="forbid"``, so a typo in a pipeline spec is an error naming the
strategy and the option, not a silently ignored setting.

Rules every strategy follows (the reasons are in brackets):

* it only filters (and, for ``on_target`` in relabel mode, rewrites ``leaf_id``); kept rows
  stay in input order [later stages such as "first seen wins" stay meaningful, diffs of two
  runs stay readable];
* every dropped row carries ``strategy`` and a human-readable ``reason`` naming the rule and
  the value that failed it [a reviewer must be able to tell why a prompt is missing without
  rerunning anything];
* it is deterministic: no unseeded randomness, ties broken by input order, ANN indexes built
  single-threaded [a suite is an artifact; the same inputs and specs must rebuild it
  byte-for-byte, which :func:`pipeline_hash` then identifies].

Embeddings are not a column: they live in :class:`SelectionContext`'s cache keyed by text,
so several strategies (dedup, diversity, on-target) embed each prompt once.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from trustflow.errors import ConfigError, InputError
from trustflow.registry import Options, Registry, validate_options
from trustflow.tasks.seval.selection.embeddings import E5Embedder, Embedder, Kind

REQUIRED_COLUMNS: tuple[str, ...] = ("prompt_uid", "prompt", "lang", "leaf_id")
LANGS: tuple[str, ...] = ("zh", "en")
GroupKey = tuple[str, str]  # (leaf_id, lang)


# --- context ---------------------------------------------------------------------------------


@dataclass
class StageReport:
    """What one pipeline stage did: counts and, for ``balance``, the groups short of quota."""

    name: str
    rows_in: int
    kept: int
    dropped: int
    shortfall: dict[GroupKey, int] = field(default_factory=dict)


@dataclass
class SelectionContext:
    """State shared by the strategies of one pipeline run.

    ``embedder``: the vector space (default multilingual-e5-small, loaded on first use).
    ``reference_prompts``: prompts of existing suites; dedup strategies drop candidates that
    duplicate any of them. ``taxonomy``: the risk taxonomy for ``on_target`` (default: the
    built-in one, loaded on first use). ``reports`` is appended to by :func:`run_pipeline`.
    There is deliberately no critic here: hardness is computed by an earlier stage
    (reference-model answers judged by the critic) and arrives as a column.
    """

    embedder: Embedder = field(default_factory=E5Embedder)
    reference_prompts: list[str] = field(default_factory=list)
    taxonomy: Any = None  # trustflow.data.seval.taxonomy.Taxonomy; Any avoids a hard import cycle
    reports: list[StageReport] = field(default_factory=list)
    _cache: dict[tuple[Kind, str], np.ndarray] = field(default_factory=dict, init=False, repr=False)

    def embed(self, texts: Sequence[str], kind: Kind = "query") -> np.ndarray:
        """``(len(texts), dim)`` float32 unit vectors; each distinct text is embedded once."""
        texts = [str(t) for t in texts]
        missing = list(dict.fromkeys(t for t in texts if (kind, t) not in self._cache))
        if missing:
            vectors = np.asarray(self.embedder.embed(missing, kind=kind), dtype=np.float32)
            if vectors.shape[0] != len(missing):
                raise ConfigError(
                    f"embedder {getattr(self.embedder, 'name', type(self.embedder).__name__)!r} returned "
                    f"{vectors.shape[0]} vectors for {len(missing)} texts"
                )
            for t, v in zip(missing, vectors, strict=True):
                self._cache[(kind, t)] = v
        if not texts:
            return np.zeros((0, int(self.embedder.dim)), dtype=np.float32)
        return np.stack([self._cache[(kind, t)] for t in texts]).astype(np.float32, copy=False)

    def get_taxonomy(self) -> Any:
        if self.taxonomy is None:
            from trustflow.data.seval.taxonomy import load_taxonomy

            self.taxonomy = load_taxonomy()
        return self.taxonomy


# --- result ----------------------------------------------------------------------------------


@dataclass
class SelectionResult:
    """Rows kept and rows dropped (input columns + ``strategy`` + ``reason``).

    ``shortfall`` is filled by ``balance`` only: ``(leaf_id, lang) -> rows missing to reach the
    quota``. It is an attribute rather than rows in ``dropped`` because a shortfall is a
    missing row, not a rejected one; mixing them would make ``len(dropped)`` lie.
    """

    kept: pd.DataFrame
    dropped: pd.DataFrame
    shortfall: dict[GroupKey, int] = field(default_factory=dict)


# --- strategies ------------------------------------------------------------------------------


class StrategyOptions(Options):
    """Options every strategy accepts (none yet); each strategy subclasses this."""


class Strategy(ABC):
    """One selection rule. Subclasses set ``Options`` and implement :meth:`select`."""

    name: ClassVar[str] = ""  # set by ``@SELECTORS.register``
    Options: ClassVar[type[StrategyOptions]] = StrategyOptions
    # Columns the strategy needs beyond REQUIRED_COLUMNS (checked before select runs).
    needs_columns: ClassVar[tuple[str, ...]] = ()

    def __init__(self, options: StrategyOptions | Mapping[str, Any] | None = None, **overrides: Any) -> None:
        if isinstance(options, StrategyOptions):
            merged: dict[str, Any] = {**options.model_dump(exclude_unset=True), **overrides}
        else:
            merged = {**(options or {}), **overrides}
        self.options = validate_options(f"selection strategy {self.name!r}", self.Options, merged)

    def __call__(self, df: pd.DataFrame, ctx: SelectionContext) -> SelectionResult:
        """Check the input, run :meth:`select`, check that kept + dropped partition the input."""
        df = check_frame(df, self.name)
        for col in self.needs_columns:
            if col not in df.columns:
                raise self.missing_column_error(col)
        result = self.select(df, ctx)
        if len(result.kept) + len(result.dropped) != len(df):
            raise AssertionError(
                f"selection strategy {self.name!r} kept {len(result.kept)} + dropped {len(result.dropped)} "
                f"rows of {len(df)}"
            )
        return result

    def missing_column_error(self, column: str) -> ConfigError:
        return ConfigError(f"selection strategy {self.name!r} needs a {column!r} column, which the input lacks")

    @abstractmethod
    def select(self, df: pd.DataFrame, ctx: SelectionContext) -> SelectionResult:
        """Split ``df`` (RangeIndex, required columns present, uids unique) into kept/dropped."""

    # -- helpers for subclasses ---------------------------------------------------------------

    def split(self, df: pd.DataFrame, reasons: Mapping[int, str], **extra: Any) -> SelectionResult:
        """Result dropping the rows at the positions in ``reasons`` (position -> reason)."""
        drop = np.zeros(len(df), dtype=bool)
        pos = np.fromiter(reasons.keys(), dtype=np.int64, count=len(reasons))
        drop[pos] = True
        kept = df.loc[~drop].reset_index(drop=True)
        dropped = df.loc[drop].reset_index(drop=True)
        dropped["strategy"] = pd.Series([self.name] * len(dropped), dtype=object)
        dropped["reason"] = pd.Series([reasons[int(i)] for i in np.flatnonzero(drop)], dtype=object)
        return SelectionResult(kept=kept, dropped=dropped, **extra)


SELECTORS: Registry[type[Strategy]] = Registry(
    "selection strategy", plugins="trustflow.tasks.seval.selection", factory=lambda entry, options: entry.obj(options)
)


# --- input checks and shared helpers ---------------------------------------------------------


def check_frame(df: pd.DataFrame, where: str) -> pd.DataFrame:
    """The input with a fresh RangeIndex, after checking columns, uid uniqueness and langs."""
    if not isinstance(df, pd.DataFrame):
        raise InputError(f"{where}: expected a pandas DataFrame of candidate prompts, got {type(df).__name__}")
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"{where}: candidate prompts lack column(s) {missing}; required: {list(REQUIRED_COLUMNS)}")
    for col in ("strategy", "reason"):
        if col in df.columns:
            raise InputError(f"{where}: input must not have a {col!r} column (it is added to dropped rows)")
    dup = df["prompt_uid"][df["prompt_uid"].duplicated()]
    if len(dup):
        raise InputError(f"{where}: prompt_uid must be unique; repeated: {sorted(map(str, dup.unique()))[:5]}")
    bad = df.loc[~df["lang"].isin(LANGS), "prompt_uid"]
    if len(bad):
        raise InputError(f"{where}: lang must be 'zh' or 'en'; rows {list(map(str, bad))[:5]} are not")
    return df.reset_index(drop=True)


def has_hardness(df: pd.DataFrame) -> bool:
    """True when a ``hardness`` column exists and holds at least one number."""
    return "hardness" in df.columns and bool(pd.to_numeric(df["hardness"], errors="coerce").notna().any())


def priority_order(df: pd.DataFrame, use_hardness: bool) -> np.ndarray:
    """Positions in the order "who wins": hardest first when asked (NaN last), ties by input order."""
    n = len(df)
    if not use_hardness:
        return np.arange(n)
    h = pd.to_numeric(df["hardness"], errors="coerce").to_numpy(dtype=np.float64)
    h = np.where(np.isnan(h), -np.inf, h)
    return np.lexsort((np.arange(n), -h))  # last key is primary: -hardness, then position


def groups(df: pd.DataFrame, keys: Sequence[str]) -> list[tuple[tuple[str, ...], np.ndarray]]:
    """(key values, positions) per group, groups sorted by key, positions in input order."""
    if len(df) == 0:
        return []
    out: dict[tuple[str, ...], list[int]] = {}
    for pos, vals in enumerate(zip(*(df[k].astype(str) for k in keys), strict=True)):
        out.setdefault(tuple(vals), []).append(pos)
    return [(k, np.asarray(out[k], dtype=np.int64)) for k in sorted(out)]


# --- pipeline --------------------------------------------------------------------------------


def _build(spec: Any, i: int) -> Strategy:
    if not isinstance(spec, Mapping):
        raise ConfigError(f"selection spec #{i}: expected a mapping like {{'name': 'near_dedup', ...}}, got {spec!r}")
    if "name" not in spec or not isinstance(spec["name"], str):
        raise ConfigError(f"selection spec #{i}: missing strategy 'name' (known: {', '.join(SELECTORS.names())})")
    entry, options = SELECTORS.resolve(spec["name"], **{k: v for k, v in spec.items() if k != "name"})
    assert isinstance(options, StrategyOptions)
    return entry.obj(options)


def build_pipeline(specs: Sequence[Mapping[str, Any]]) -> list[Strategy]:
    """Strategies for the specs, all validated before any runs (a typo in the last stage must
    not cost an embedding pass over the first)."""
    if isinstance(specs, (str, bytes)) or not isinstance(specs, Sequence):
        raise ConfigError(f"selection specs must be a list of mappings, got {type(specs).__name__}")
    return [_build(spec, i) for i, spec in enumerate(specs)]


def run_pipeline(
    df: pd.DataFrame, specs: Sequence[Mapping[str, Any]], ctx: SelectionContext
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run the strategies in order; return the final kept rows and every dropped row.

    ``dropped_all`` concatenates each stage's dropped rows in stage order (its ``strategy``
    column says which stage). A :class:`StageReport` per stage is appended to ``ctx.reports``
    (including ``balance``'s shortfall), keeping the return value a plain pair.
    """
    stages = build_pipeline(specs)
    kept = check_frame(df, "selection pipeline")
    dropped_parts: list[pd.DataFrame] = []
    for stage in stages:
        rows_in = len(kept)
        result = stage(kept, ctx)
        ctx.reports.append(
            StageReport(stage.name, rows_in, len(result.kept), len(result.dropped), dict(result.shortfall))
        )
        dropped_parts.append(result.dropped)
        kept = result.kept
    empty = kept.iloc[0:0].assign(strategy=pd.Series(dtype=object), reason=pd.Series(dtype=object))
    parts = [p for p in dropped_parts if len(p)]
    dropped_all = pd.concat(parts, ignore_index=True) if parts else empty
    return kept, dropped_all


def canonical_specs(specs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Specs with every option spelled out (defaults filled), as JSON-able dicts."""
    return [{"name": s.name, **s.options.model_dump(mode="json")} for s in build_pipeline(specs)]


def pipeline_hash(specs: Sequence[Mapping[str, Any]]) -> str:
    """16 hex chars of SHA-256 over the canonical JSON of the specs.

    The specs are first validated and their defaults filled in, so ``{"name": "near_dedup"}``
    and ``{"name": "near_dedup", "threshold": 0.92}`` hash alike, while a changed default
    changes the hash (as it changes the output). Stage order matters.
    """
    text = json.dumps(canonical_specs(specs), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
