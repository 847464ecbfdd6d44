"""The S-Eval risk taxonomy as data: 4 levels, bilingual (zh/en), stable ids, user-extensible.

Why data and not code: generators, critics and reports all need the same tree (names in both
languages, descriptions a generator LLM can target), and teams need to add their own risks
without editing trustflow. ``taxonomy.yaml`` beside this module holds the tree; a user YAML
with the same ``nodes:`` list adds nodes or overrides fields of existing ones.

Id scheme: a dotted path of ``lower_snake_case`` segments, one per level (``crimes`` >
``crimes.drugs`` > ``crimes.drugs.trafficking`` > ``crimes.drugs.trafficking.smuggling_routes``),
so a node's parent is its id minus the last segment and its level is the number of segments.
Every node also states ``level`` and ``parent`` explicitly; the redundancy is deliberate, so a
typo is caught with a message naming the file and node instead of silently moving a subtree.
Levels 1-2 are S-Eval's (8 dimensions, 25 categories); levels 3-4 are trustflow's own.
"""

from __future__ import annotations

import copy
import difflib
import functools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from trustflow.errors import ConfigError, InputError

TAXONOMY_PATH = Path(__file__).with_name("taxonomy.yaml")
MAX_LEVEL = 4
LANGS = ("zh", "en")
_ID_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
_TOP_KEYS = {"schema", "version", "nodes"}

Origin = Literal["s-eval", "trustflow", "user"]


class Bilingual(BaseModel):
    """A text in both languages S-Eval is published in; neither may be empty."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)

    def get(self, lang: str) -> str:
        if lang not in LANGS:
            raise ConfigError(f"unknown language {lang!r}; known: {', '.join(LANGS)}")
        return getattr(self, lang)


class RiskNode(BaseModel):
    """One risk at one level of the taxonomy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    level: int = Field(ge=1, le=MAX_LEVEL)
    parent: str | None
    name: Bilingual
    description: Bilingual | None = None  # required at levels 3-4 (what a generator targets)
    risk_type: str | None = None  # level 1 only: S-Eval's ``risk_type`` string in the files
    abbr: str | None = None  # level 1 only: S-Eval's two-letter abbreviation
    origin: Origin = "trustflow"  # set by the loader, not by YAML

    @property
    def segment(self) -> str:
        return self.id.rsplit(".", 1)[-1]


class Taxonomy:
    """The loaded tree. Nodes keep file order (base file first, then user additions)."""

    def __init__(self, nodes: list[RiskNode]) -> None:
        self._nodes: dict[str, RiskNode] = {n.id: n for n in nodes}
        self._children: dict[str | None, list[str]] = {}
        for n in nodes:
            self._children.setdefault(n.parent, []).append(n.id)
        self._by_risk_type = {n.risk_type: n.id for n in nodes if n.risk_type}

    def node(self, node_id: str) -> RiskNode:
        try:
            return self._nodes[node_id]
        except KeyError:
            close = difflib.get_close_matches(node_id, list(self._nodes), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"unknown risk taxonomy id {node_id!r}{hint}") from None

    def children(self, node_id: str) -> list[RiskNode]:
        self.node(node_id)
        return [self._nodes[c] for c in self._children.get(node_id, [])]

    def roots(self) -> list[RiskNode]:
        return [self._nodes[c] for c in self._children.get(None, [])]

    def leaves(self) -> list[RiskNode]:
        """Nodes without children (mostly level 4; a user may add shallower leaves)."""
        return [n for n in self._nodes.values() if not self._children.get(n.id)]

    def level(self, n: int) -> list[RiskNode]:
        if not 1 <= n <= MAX_LEVEL:
            raise ConfigError(f"taxonomy levels are 1-{MAX_LEVEL}, not {n}")
        return [node for node in self._nodes.values() if node.level == n]

    def path(self, node_id: str) -> list[RiskNode]:
        """The node's ancestors from its level-1 dimension down, ending with the node itself."""
        chain = [self.node(node_id)]
        while chain[-1].parent is not None:
            chain.append(self._nodes[chain[-1].parent])
        return chain[::-1]

    def dimension_for_risk_type(self, risk_type: str) -> str:
        """Level-1 id for S-Eval's ``risk_type`` string as it appears in the files."""
        try:
            return self._by_risk_type[risk_type]
        except KeyError:
            known = ", ".join(sorted(self._by_risk_type))
            raise InputError(f"unknown S-Eval risk_type {risk_type!r}; known: {known}") from None

    def risk_types(self) -> dict[str, str]:
        """S-Eval ``risk_type`` string → level-1 id."""
        return dict(self._by_risk_type)

    def ids(self) -> list[str]:
        return list(self._nodes)

    def __len__(self) -> int:
        return len(self._nodes)

    def __iter__(self) -> Iterator[RiskNode]:
        return iter(self._nodes.values())

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._nodes


# --- loading ---------------------------------------------------------------------------------


def load_taxonomy(extra_yaml: Path | None = None) -> Taxonomy:
    """The built-in taxonomy, plus the nodes and overrides of ``extra_yaml`` if given.

    In ``extra_yaml`` a node whose id already exists overrides the fields it gives (names and
    descriptions per language); its level and parent cannot change (ids are stable). Any
    other node is added. Every problem raises ``ConfigError`` naming the file and node id.
    """
    raw_nodes = {r["id"]: (r, TAXONOMY_PATH) for r in _base_raw()}
    if extra_yaml is not None:
        for raw in _read_nodes(Path(extra_yaml)):
            node_id = raw["id"]
            if node_id in raw_nodes:
                raw_nodes[node_id] = (_override(raw_nodes[node_id][0], raw, Path(extra_yaml)), Path(extra_yaml))
            else:
                raw_nodes[node_id] = ({**raw, "origin": "user"}, Path(extra_yaml))
    nodes = [_validate_node(raw, where) for raw, where in raw_nodes.values()]
    _check_tree(nodes, {n.id: where for n, (_, where) in zip(nodes, raw_nodes.values(), strict=True)})
    return Taxonomy(nodes)


@functools.lru_cache(maxsize=1)
def _base_cached() -> tuple[dict[str, Any], ...]:
    nodes = _read_nodes(TAXONOMY_PATH)
    for raw in nodes:
        raw["origin"] = "s-eval" if raw.get("level") in (1, 2) else "trustflow"
    return tuple(nodes)


def _base_raw() -> list[dict[str, Any]]:
    return copy.deepcopy(list(_base_cached()))


def _read_nodes(path: Path) -> list[dict[str, Any]]:
    """The ``nodes`` list of a taxonomy YAML, with per-file structural checks."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read taxonomy file ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("nodes"), list):
        raise ConfigError(f"{path}: expected a mapping with a 'nodes:' list")
    unknown = set(doc) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown top-level keys {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}")
    seen: set[str] = set()
    for i, raw in enumerate(doc["nodes"]):
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
            raise ConfigError(f"{path}: nodes[{i}]: expected a mapping with a string 'id'")
        if "origin" in raw:
            raise ConfigError(f"{path}: node {raw['id']!r}: 'origin' is set by the loader, not the file")
        if raw["id"] in seen:
            raise ConfigError(f"{path}: node {raw['id']!r}: duplicate id")
        seen.add(raw["id"])
    return doc["nodes"]


def _override(existing: dict[str, Any], patch: dict[str, Any], path: Path) -> dict[str, Any]:
    node_id = existing["id"]
    for key in ("level", "parent"):
        if key in patch and patch[key] != existing.get(key):
            raise ConfigError(
                f"{path}: node {node_id!r}: cannot change {key} of an existing node "
                f"({existing.get(key)!r} -> {patch[key]!r}); ids are stable, add a new id instead"
            )
    merged = dict(existing)
    for key, value in patch.items():
        if key in ("name", "description") and isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def _validate_node(raw: dict[str, Any], path: Path) -> RiskNode:
    node_id = raw["id"]
    where = f"{path}: node {node_id!r}"
    try:
        node = RiskNode.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        if err["type"] in ("missing", "string_too_short") and len(err["loc"]) == 2 and err["loc"][1] in LANGS:
            what = "missing" if err["type"] == "missing" else "empty"
            raise ConfigError(
                f"{where}: {what} {err['loc'][0]} in language {err['loc'][1]!r} (zh and en are required)"
            ) from None
        if err["loc"] and err["loc"][0] == "level":
            raise ConfigError(f"{where}: wrong level {raw.get('level')!r}: levels are integers 1-{MAX_LEVEL}") from None
        raise ConfigError(f"{where}: {loc}: {err['msg']}") from None
    if not _ID_RE.match(node_id):
        raise ConfigError(f"{where}: id must be dotted lower_snake_case segments (e.g. crimes.drugs.trafficking)")
    segments = node_id.split(".")
    if len(segments) != node.level:
        raise ConfigError(f"{where}: wrong level {node.level}: the id has {len(segments)} segment(s), one per level")
    expected_parent = ".".join(segments[:-1]) or None
    if node.parent != expected_parent:
        raise ConfigError(f"{where}: parent is {node.parent!r} but the id says {expected_parent!r}")
    if node.level >= 3 and node.description is None:
        raise ConfigError(f"{where}: level-{node.level} nodes need a description in zh and en (a generator targets it)")
    if node.level != 1 and (node.risk_type or node.abbr):
        raise ConfigError(f"{where}: risk_type/abbr belong to level-1 dimensions only")
    return node


def _check_tree(nodes: list[RiskNode], where: dict[str, Path]) -> None:
    by_id = {n.id: n for n in nodes}
    risk_types: dict[str, str] = {}
    for n in nodes:
        if n.parent is not None:
            parent = by_id.get(n.parent)
            if parent is None:
                raise ConfigError(f"{where[n.id]}: node {n.id!r}: unknown parent {n.parent!r}")
            if parent.level != n.level - 1:
                raise ConfigError(
                    f"{where[n.id]}: node {n.id!r}: wrong level {n.level}: parent {parent.id!r} is level {parent.level}"
                )
        if n.risk_type:
            if n.risk_type in risk_types:
                raise ConfigError(
                    f"{where[n.id]}: node {n.id!r}: risk_type {n.risk_type!r} already maps to {risk_types[n.risk_type]!r}"
                )
            risk_types[n.risk_type] = n.id
