"""S-Eval JSONL(.zip) files, read as published (any split, zh/en, base_risk/attack).

Each line has ``traceid``, ``risk_type``, ``prompt`` and ``ext`` (a JSON-encoded string).
Every malformed input raises ``InputError`` naming the file, the member and the line; so
does a file without a single record (an empty or blank file, or an empty zip member).
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from trustflow.data.schemas import SEVAL_PROMPTS
from trustflow.errors import InputError

_NAME_RE = re.compile(r"^S-Eval_(base_risk|attack)_(zh|en)(?:_([A-Za-z0-9.]+))?\.jsonl(?:\.zip)?$")
REQUIRED_FIELDS = ("traceid", "risk_type", "prompt", "ext")


@dataclass(frozen=True)
class SevalFile:
    """One published S-Eval file and what its name says about it."""

    path: Path
    set: str  # base_risk | attack
    lang: str  # zh | en
    split: str  # small | medium | large | full (no suffix) | a version tag


def describe(path: Path) -> SevalFile:
    match = _NAME_RE.match(path.name)
    if not match:
        raise InputError(
            f"{path}: not an S-Eval file name; expected S-Eval_<base_risk|attack>_<zh|en>[_<split>].jsonl[.zip]"
        )
    return SevalFile(path=path, set=match.group(1), lang=match.group(2), split=match.group(3) or "full")


def find_seval_files(source: Path) -> list[SevalFile]:
    """The S-Eval files at ``source`` (a file, or a directory searched recursively)."""
    if source.is_file():
        return [describe(source)]
    if not source.is_dir():
        raise InputError(f"{source}: no such file or directory")
    found = sorted(
        p
        for p in source.rglob("S-Eval_*.jsonl*")
        if p.is_file()
        and "__MACOSX" not in p.parts
        and not any(part.startswith(".") for part in p.relative_to(source).parts)
    )
    if not found:
        raise InputError(f"{source}: no S-Eval files (S-Eval_*.jsonl or S-Eval_*.jsonl.zip) found")
    return [describe(p) for p in found]


def _jsonl_lines(path: Path) -> tuple[str, Iterator[bytes]]:
    """(member name, raw lines) of a .jsonl or the single .jsonl member of a .zip."""
    if path.suffix != ".zip":
        return path.name, iter(path.read_bytes().splitlines())
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise InputError(f"{path}: not a valid zip archive (corrupt or truncated)") from None
    with archive:
        members = [
            n for n in archive.namelist() if n.endswith(".jsonl") and not n.startswith("__MACOSX/") and "/._" not in n
        ]
        if len(members) != 1:
            raise InputError(f"{path}: expected exactly one .jsonl member, found {members or 'none'}")
        try:
            data = archive.read(members[0])
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise InputError(f"{path}: cannot read member {members[0]} ({exc})") from None
    return members[0], iter(data.splitlines())


def read_seval_file(spec: SevalFile) -> pa.Table:
    """All records of one S-Eval file as a ``seval_prompts`` table."""
    member, lines = _jsonl_lines(spec.path)
    where = f"{spec.path}" if member == spec.path.name else f"{spec.path}:{member}"
    cols: dict[str, list] = {name: [] for name in SEVAL_PROMPTS.names}
    seen: set[str] = set()
    for line_no, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            msg = getattr(exc, "msg", str(exc))
            raise InputError(f"{where}: line {line_no}: not valid JSON ({msg})") from None
        if not isinstance(record, dict):
            raise InputError(f"{where}: line {line_no}: expected a JSON object")
        for field in REQUIRED_FIELDS:
            if not isinstance(record.get(field), str):
                raise InputError(f"{where}: line {line_no}: field {field!r} missing or not a string")
        try:
            ext = json.loads(record["ext"]) if record["ext"] else {}
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}: line {line_no}: field 'ext' is not a JSON string ({exc.msg})") from None
        if not isinstance(ext, dict):
            raise InputError(f"{where}: line {line_no}: field 'ext' must encode a JSON object")
        traceid = record["traceid"]
        if traceid in seen:
            raise InputError(f"{where}: line {line_no}: duplicate traceid {traceid}")
        seen.add(traceid)
        model = ext.get("model")
        if model is not None and model != spec.set:
            raise InputError(f"{where}: line {line_no}: ext.model is {model!r} but the file name says {spec.set!r}")
        attack = ext.get("category")
        if spec.set == "attack" and not isinstance(attack, str):
            raise InputError(f"{where}: line {line_no}: attack record lacks ext.category")
        cols["prompt_id"].append(traceid)
        cols["lang"].append(spec.lang)
        cols["set"].append(spec.set)
        cols["split"].append(spec.split)
        cols["risk_type"].append(record["risk_type"])
        cols["prompt"].append(record["prompt"])
        cols["attack"].append(attack if spec.set == "attack" else None)
        from_id = ext.get("from_traceid")
        cols["from_traceid"].append(from_id if isinstance(from_id, str) else None)
        cols["ext"].append(record["ext"])
        cols["source_file"].append(spec.path.name)
        cols["line_no"].append(line_no)
    if not cols["prompt_id"]:
        raise InputError(f"{where}: no S-Eval records (the file is empty); an empty file is not ingested")
    return pa.table(cols, schema=SEVAL_PROMPTS.schema)


def check_archive(path: Path) -> None:
    """Fail fast on an empty file or a corrupt archive, before any work is scheduled or
    anything written (a truncated download must not become a complete, empty dataset)."""
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty (0 bytes); an empty file is not ingested")
    if path.suffix != ".zip":
        return
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except zipfile.BadZipFile:
        raise InputError(f"{path}: not a valid zip archive (corrupt or truncated)") from None
    if bad is not None:
        raise InputError(f"{path}: zip member {bad} is corrupt (CRC mismatch)")
