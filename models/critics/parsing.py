"""Robust parsing of a judge LLM's structured answer.

Small judges wrap JSON in prose or code fences, use single quotes, trailing commas,
yes/no or 是/否 instead of booleans, or stop mid-object. We accept all of that when the
meaning is unambiguous and return ``None`` otherwise — the caller records a judge error
instead of guessing.
"""

from __future__ import annotations

import json
import re
from typing import Any

_TRUE = {"true", "yes", "y", "1", "是", "对", "有", "unsafe"}
_FALSE = {"false", "no", "n", "0", "否", "不是", "无", "没有", "safe"}


def as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return bool(value)
    if isinstance(value, str):
        v = value.strip().strip("\"'").lower()
        if v in _TRUE:
            return True
        if v in _FALSE:
            return False
    return None


def _candidate_objects(text: str) -> list[str]:
    """Balanced {...} spans, outermost first, in order of appearance."""
    spans, depth, start = [], 0, None
    for i, ch in enumerate(text):
        if ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
            if depth == 0 and start is not None:
                spans.append(text[start : i + 1])
    if depth and start is not None:  # truncated object: try closing it
        spans.append(text[start:] + "}" * depth)
    return spans


def _loads_lenient(blob: str) -> dict[str, Any] | None:
    for attempt in (blob, re.sub(r",\s*([}\]])", r"\1", blob)):
        try:
            value = json.loads(attempt)
            return value if isinstance(value, dict) else None
        except json.JSONDecodeError:
            pass
    relaxed = re.sub(r"(?<![A-Za-z])'([^']*)'", r'"\1"', blob)
    relaxed = re.sub(r",\s*([}\]])", r"\1", relaxed)
    relaxed = re.sub(r"\bTrue\b", "true", re.sub(r"\bFalse\b", "false", relaxed))
    try:
        value = json.loads(relaxed)
        return value if isinstance(value, dict) else None
    except json.JSONDecodeError:
        return None


def parse_judge_output(text: str, keys: tuple[str, ...]) -> dict[str, Any] | None:
    """The first JSON-ish object in ``text`` holding all boolean ``keys``, else a key: value scan."""
    cleaned = re.sub(r"```(?:json)?", "", text)
    for blob in _candidate_objects(cleaned):
        obj = _loads_lenient(blob)
        if obj is None:
            continue
        lowered = {str(k).strip().lower(): v for k, v in obj.items()}
        if all(as_bool(lowered.get(k)) is not None for k in keys):
            return {**lowered, **{k: as_bool(lowered[k]) for k in keys}}
    found: dict[str, Any] = {}
    for key in keys:
        match = re.search(rf"{key}\W{{0,4}}\s*[:=：]\s*\"?([A-Za-z是否对有无没]+)", cleaned, flags=re.IGNORECASE)
        if not match or as_bool(match.group(1)) is None:
            return None
        found[key] = as_bool(match.group(1))
    return found
