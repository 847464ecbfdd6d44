"""Terminal tables of models: short display names, and leaderboards that stay readable.

A model spec can be long (``openai:http://127.0.0.1:8000/v1#/home/u/.cache/.../model``).
Printed as-is in a table's first column it took the whole terminal and rich squeezed every
numeric column to nothing. Here:

- each model gets a **display name**: the user's alias (``--alias NAME=SPEC``) if given,
  else a shortened spec (:func:`short_spec`), made unique when two specs shorten alike;
- numeric columns never shrink below their longest word, so a number is never cut; when
  the terminal is narrow the cells wrap at spaces (``12.5 [3–25]`` → two lines) and the
  name column folds, instead of numbers turning into ``…``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import PurePosixPath
from urllib.parse import urlparse

from rich.table import Table

from trustflow.errors import InputError

MAX_NAME = 40  # a shortened spec longer than this keeps its head and tail around "…"
NAME_MIN_WIDTH = 12  # the name column folds, but never below this many characters


def _tail(path: str) -> str:
    """Last non-empty path component (``/a/b/`` → ``b``); the text itself when it has none."""
    name = PurePosixPath(path.rstrip("/")).name
    return name or path


def _ellipsize(text: str, width: int = MAX_NAME) -> str:
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head) :]


def short_spec(spec: str) -> str:
    """A short, still recognisable name for a model spec.

    ``openai:http://HOST:PORT/v1#/long/dir/model`` → ``model@HOST:PORT`` (the served model's
    last path part, and where it is served); without ``#MODEL`` → ``openai:HOST:PORT``;
    ``hf:/dir/file.gguf`` or ``hf:/dir#file.gguf`` → ``hf:file.gguf``; ``hf:/dir/model`` →
    ``hf:model``; short specs (``pkg:smollm2-135m``, ``endpoint:judge``) stay as they are.
    Anything still longer than 40 characters keeps its start and end around ``…``.
    """
    scheme, sep, target = spec.partition(":")
    if not sep:
        return _ellipsize(spec)
    location, hash_, fragment = target.rpartition("#") if "#" in target else (target, "", "")
    if scheme in ("openai", "endpoint") and location.startswith(("http://", "https://")):
        netloc = urlparse(location).netloc or location
        short = f"{_tail(fragment)}@{netloc}" if hash_ and fragment else f"{scheme}:{netloc}"
    elif scheme in ("hf", "vllm") and ("/" in location or hash_):
        short = f"{scheme}:{_tail(fragment) if hash_ and fragment else _tail(location)}"
    else:
        short = spec
    return _ellipsize(short)


def parse_aliases(values: Iterable[str], specs: Sequence[str]) -> dict[str, str]:
    """``NAME=SPEC`` options → {spec: name}. A spec that is not one of ``specs``, an empty
    name or a name used twice is an :class:`InputError` (a typo would silently do nothing)."""
    aliases: dict[str, str] = {}
    for value in values:
        name, sep, spec = value.partition("=")
        name, spec = name.strip(), spec.strip()
        if not sep or not name or not spec:
            raise InputError(f"--alias {value!r}: expected NAME=SPEC, e.g. smol=pkg:smollm2-135m")
        if spec not in specs:
            raise InputError(f"--alias {value!r}: {spec!r} is not one of the models ({', '.join(specs)})")
        if name in aliases.values() and aliases.get(spec) != name:
            raise InputError(f"--alias {value!r}: the name {name!r} is already used for another model")
        aliases[spec] = name
    return aliases


def display_names(specs: Sequence[str], aliases: Mapping[str, str] | None = None) -> dict[str, str]:
    """{spec: display name}: the alias, else :func:`short_spec`; names that collide get ``#2``, ``#3``…"""
    aliases = aliases or {}
    names: dict[str, str] = {}
    used: set[str] = set(aliases.values())
    for spec in specs:
        if spec in names:
            continue
        if spec in aliases:
            names[spec] = aliases[spec]
            continue
        base = short_spec(spec)
        name, n = base, 1
        while name in used:
            n += 1
            name = f"{base}#{n}"
        names[spec] = name
        used.add(name)
    return names


def _longest_word(cells: Iterable[str]) -> int:
    return max((len(word) for cell in cells for word in cell.split()), default=1)


def board_table(
    title: str | None, header: Sequence[str], body: Sequence[Sequence[str]], name_columns: int = 1
) -> Table:
    """A rich table whose first ``name_columns`` columns are names (left, folding) and the rest
    numbers (right-aligned, wrapping only at spaces, never narrower than their longest word)."""
    table = Table(title=title)
    for i, label in enumerate(header):
        column = [label, *(row[i] for row in body)]
        if i < name_columns:
            longest = max(len(cell) for cell in column)
            table.add_column(label, overflow="fold", min_width=min(longest, NAME_MIN_WIDTH))
        else:
            table.add_column(label, justify="right", overflow="fold", min_width=_longest_word(column))
    for row in body:
        table.add_row(*row)
    return table
