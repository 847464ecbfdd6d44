"""What changed between two test suites: prompts added, removed and kept, per leaf and language.

Base prompts are matched by normalised text (case, whitespace and punctuation folded), not
by id: a regenerated suite gets new candidate ids, and a team wants to know whether the
*questions* changed. Attack rows are counted per attack on each side.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

_PUNCT = re.compile(r"[\W_]+", re.UNICODE)


def normalise(text: str) -> str:
    return _PUNCT.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


@dataclass
class SuiteDiff:
    a: str
    b: str
    added: list[dict[str, Any]] = field(default_factory=list)  # base rows only in b
    removed: list[dict[str, Any]] = field(default_factory=list)  # base rows only in a
    common: int = 0
    groups: list[dict[str, Any]] = field(default_factory=list)  # per (leaf_id, lang): a, b, added, removed
    attacks: list[dict[str, Any]] = field(default_factory=list)  # per attack: a, b

    def as_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "added": len(self.added),
            "removed": len(self.removed),
            "common": self.common,
            "groups": self.groups,
            "attacks": self.attacks,
            "added_prompts": [r["prompt"] for r in self.added],
            "removed_prompts": [r["prompt"] for r in self.removed],
        }


def _base(table: pa.Table) -> list[dict[str, Any]]:
    rows = table.filter(pc.equal(table["set"], "base_risk")).to_pylist()
    for r in rows:
        r.setdefault("leaf_id", r.get("dimension"))
    return rows


def diff_suites(a_id: str, a: pa.Table, b_id: str, b: pa.Table) -> SuiteDiff:
    base_a, base_b = _base(a), _base(b)
    keys_a = {(r["lang"], normalise(r["prompt"])) for r in base_a}
    keys_b = {(r["lang"], normalise(r["prompt"])) for r in base_b}
    out = SuiteDiff(a_id, b_id)
    out.added = [r for r in base_b if (r["lang"], normalise(r["prompt"])) not in keys_a]
    out.removed = [r for r in base_a if (r["lang"], normalise(r["prompt"])) not in keys_b]
    out.common = len(keys_a & keys_b)
    count_a = Counter((r["leaf_id"], r["lang"]) for r in base_a)
    count_b = Counter((r["leaf_id"], r["lang"]) for r in base_b)
    plus = Counter((r["leaf_id"], r["lang"]) for r in out.added)
    minus = Counter((r["leaf_id"], r["lang"]) for r in out.removed)
    for key in sorted(set(count_a) | set(count_b)):
        out.groups.append(
            {
                "leaf_id": key[0],
                "lang": key[1],
                "a": count_a[key],
                "b": count_b[key],
                "added": plus[key],
                "removed": minus[key],
            }
        )
    att_a = Counter(x for x in a.filter(pc.equal(a["set"], "attack"))["attack"].to_pylist())
    att_b = Counter(x for x in b.filter(pc.equal(b["set"], "attack"))["attack"].to_pylist())
    out.attacks = [{"attack": k, "a": att_a[k], "b": att_b[k]} for k in sorted(set(att_a) | set(att_b))]
    return out
