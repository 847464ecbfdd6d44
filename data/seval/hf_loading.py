"""S-Eval through Hugging Face ``datasets``: the same rows and columns as our own loader.

Why a second path: downstream code (generation, training) often wants a ``datasets.Dataset``
(``map``, ``filter``, batching, the HF cache), and the published dataset also lives on the hub.

- ``load_seval_file_hf(path)`` reads one published ``.jsonl`` or ``.jsonl.zip`` locally with
  ``load_dataset("json", data_files=...)``. ``datasets`` opens the zip itself (checked with
  datasets 5.1: it extracts into its cache and skips the ``__MACOSX/._*`` junk member), so no
  manual extraction is needed. The result has the ``seval_prompts`` columns, in file order.
- ``load_seval_hub(config)`` loads a config of the hub dataset ``IS2Lab/S-Eval``, but only
  when the hub is reachable: with ``HF_HUB_OFFLINE=1`` (or ``HF_DATASETS_OFFLINE=1``) or no
  TCP connection to the endpoint within ``timeout_s`` it fails at once with ``HubUnavailable``
  instead of hanging in ``datasets``' retries. The hub's config names and record layout are
  defined by the dataset card, not here; this path could not be exercised offline.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import urllib.parse
from pathlib import Path
from typing import Any

import datasets

from trustflow.data.loaders.seval import describe
from trustflow.data.schemas import SEVAL_PROMPTS
from trustflow.errors import InputError, TrustflowError

HUB_REPO = "IS2Lab/S-Eval"
RAW_FIELDS = ("traceid", "risk_type", "prompt", "ext")
FEATURES = datasets.Features.from_arrow_schema(SEVAL_PROMPTS.schema)


class HubUnavailable(TrustflowError):
    """The Hugging Face Hub is switched off (HF_HUB_OFFLINE) or cannot be reached quickly."""


def _default_cache_dir() -> Path:
    from trustflow.settings import load_settings

    return load_settings().home_dir / "cache" / "hf-datasets"


def load_seval_file_hf(path: Path, cache_dir: Path | None = None) -> datasets.Dataset:
    """One published S-Eval file as a ``datasets.Dataset`` with the ``seval_prompts`` columns.

    ``line_no`` is the record's 1-based ordinal; it equals our loader's line number because
    the published files have no blank lines between records.
    """
    spec = describe(path)  # validates the name; gives set, lang and split
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    cache = cache_dir or _default_cache_dir()
    try:
        raw = datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=str(cache))
    except Exception as exc:  # datasets raises many types (DatasetGenerationError, ArrowInvalid, ...)
        raise InputError(f"{path}: datasets could not read it as JSON lines ({type(exc).__name__}: {exc})") from None
    return _to_seval_columns(raw, str(path), spec.set, spec.lang, spec.split, path.name)


def _to_seval_columns(
    raw: datasets.Dataset, where: str, set_: str, lang: str, split: str, source: str
) -> datasets.Dataset:
    """Map raw S-Eval records (traceid, risk_type, prompt, ext) to our loader's columns."""
    missing = [f for f in RAW_FIELDS if f not in raw.column_names]
    if missing:
        raise InputError(f"{where}: records lack fields {missing} (columns: {raw.column_names})")

    def convert(batch: dict[str, list[Any]], indices: list[int]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {name: [] for name in SEVAL_PROMPTS.names}
        for i, traceid, risk, prompt, ext_raw in zip(
            indices, batch["traceid"], batch["risk_type"], batch["prompt"], batch["ext"], strict=True
        ):
            try:
                ext = json.loads(ext_raw) if ext_raw else {}
            except (json.JSONDecodeError, TypeError):
                raise InputError(f"{where}: record {i + 1}: field 'ext' is not a JSON string") from None
            if not isinstance(ext, dict):
                raise InputError(f"{where}: record {i + 1}: field 'ext' must encode a JSON object")
            attack = ext.get("category")
            if set_ == "attack" and not isinstance(attack, str):
                raise InputError(f"{where}: record {i + 1}: attack record lacks ext.category")
            from_id = ext.get("from_traceid")
            out["prompt_id"].append(traceid)
            out["lang"].append(lang)
            out["set"].append(set_)
            out["split"].append(split)
            out["risk_type"].append(risk)
            out["prompt"].append(prompt)
            out["attack"].append(attack if set_ == "attack" else None)
            out["from_traceid"].append(from_id if isinstance(from_id, str) else None)
            out["ext"].append(ext_raw)
            out["source_file"].append(source)
            out["line_no"].append(i + 1)
        return out

    return raw.map(
        convert,
        batched=True,
        with_indices=True,
        remove_columns=raw.column_names,
        features=FEATURES,
        keep_in_memory=True,  # small; avoids writing a second cache file per call
        desc=None,
    )


# --- hub -------------------------------------------------------------------------------------

_TRUE = {"1", "true", "yes", "on"}


def hub_offline_reason(timeout_s: float = 3.0) -> str | None:
    """Why the hub cannot be used now (None if it answers a TCP connect within ``timeout_s``)."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in _TRUE:
            return f"{var}={os.environ[var]} is set"
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    parsed = urllib.parse.urlparse(endpoint)
    host = parsed.hostname or "huggingface.co"
    port = parsed.port or (443 if parsed.scheme != "http" else 80)
    outcome: list[str | None] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                outcome.append(None)
        except OSError as exc:
            outcome.append(f"cannot connect to {host}:{port} within {timeout_s:g} s ({exc})")

    # A thread because the socket timeout does not bound the DNS lookup, which can hang far longer.
    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    worker.join(timeout_s)
    if not outcome:
        return f"no answer from {host}:{port} within {timeout_s:g} s"
    return outcome[0]


def _infer(config: str, pattern: str, what: str) -> str:
    match = re.search(pattern, config)
    if not match:
        raise InputError(f"cannot tell the {what} from hub config {config!r}; pass {what}=... explicitly")
    return match.group(1)


def load_seval_hub(
    config: str,
    split: str = "train",
    *,
    lang: str | None = None,
    set_: str | None = None,
    data_split: str = "hub",
    revision: str | None = None,
    cache_dir: Path | None = None,
    timeout_s: float = 3.0,
) -> datasets.Dataset:
    """A config of the hub dataset ``IS2Lab/S-Eval`` with the ``seval_prompts`` columns.

    ``lang`` and ``set_`` default to what the config name says (``zh``/``en``, ``attack``/
    ``base``); ``data_split`` is the value written to our ``split`` column. Raises
    ``HubUnavailable`` quickly when offline rather than letting ``datasets`` retry.
    """
    reason = hub_offline_reason(timeout_s)
    if reason:
        raise HubUnavailable(
            f"Hugging Face Hub unavailable ({reason}); load the published files locally with load_seval_file_hf(path)"
        )
    lang = lang or _infer(config, r"(?:^|[_-])(zh|en)(?:$|[_-])", "lang")
    set_ = set_ or ("attack" if "attack" in config else "base_risk" if "base" in config else None)
    if set_ is None:
        raise InputError(f"cannot tell attack/base from hub config {config!r}; pass set_=... explicitly")
    try:
        raw = datasets.load_dataset(
            HUB_REPO, name=config, split=split, revision=revision, cache_dir=str(cache_dir or _default_cache_dir())
        )
    except Exception as exc:
        raise HubUnavailable(f"{HUB_REPO} config {config!r} split {split!r}: {type(exc).__name__}: {exc}") from None
    return _to_seval_columns(raw, f"{HUB_REPO}:{config}", set_, lang, data_split, f"{HUB_REPO}:{config}")
