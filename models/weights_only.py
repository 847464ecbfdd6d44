"""Reading torch files safely: ``torch.load(weights_only=True)`` with errors meant for users.

Every checkpoint or weights file the project reads goes through :func:`load_weights_only`,
so a refused file gets one message everywhere. Torch's own refusal text advises re-running
with ``weights_only=False`` (or allow-listing the offending global): that would execute
whatever the file's pickle asks for, so it is never passed on. The message names the file as
the user knows it (``label``), never a temporary copy, says the file is not a safe
weights-only checkpoint and which formats are accepted instead.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

from trustflow.errors import InputError

_GLOBAL_RE = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")
_UNSAFE_ADVICE = ("weights_only", "add_safe_globals", "safe_globals", "trust")


def refusal_message(label: str, exc: BaseException, accepted: str) -> str:
    """The one-line error for a file torch's weights-only loader could not read.

    A pickle that names a Python global (a class or function: code that would run on
    load) is reported as *not a safe weights-only checkpoint* with that global's name;
    anything else (truncated, not a torch file) with torch's first line, unless that line
    gives unsafe-loading advice."""
    text = str(exc)
    found = _GLOBAL_RE.search(text)
    if found or isinstance(exc, pickle.UnpicklingError):
        what = f"it references the Python object {found.group(1)}" if found else "it holds pickled Python objects"
        return (
            f"{label}: not a safe weights-only checkpoint ({what}, which trustflow never unpickles: "
            f"loading it could run code). Accepted: {accepted}"
        )
    first = text.strip().splitlines()[0].strip() if text.strip() else ""
    if not first or any(word in first for word in _UNSAFE_ADVICE):
        first = type(exc).__name__
    return f"{label}: not a readable weights-only torch file ({first}). Accepted: {accepted}"


def load_weights_only(path: str | Path, label: str | None = None, accepted: str = "") -> Any:
    """``torch.load(path, weights_only=True)`` on CPU; ``InputError`` naming ``label`` (default:
    the path) when torch refuses or cannot read the file. ``accepted`` says what the caller
    takes instead (shown in the message)."""
    import torch

    path = Path(path)
    shown = label or str(path)
    if not path.is_file():
        raise InputError(f"{shown}: file not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling refusals, truncated files, non-torch files
        raise InputError(refusal_message(shown, exc, accepted or "a torch file of tensors and plain values")) from None


__all__ = ["load_weights_only", "refusal_message"]
