"""Classifiers kept in the artifact store: the ``run:`` scheme and moving checkpoints around.

A training run (flow ``adversarial_train``) stores its final and best weights as
weights-only checkpoints at ``runs/adversarial_train/<run_id>/model/{final,best}.pt``
(:func:`store_run_checkpoint`). A classifier spec ``run:<run_id>[/best|/final]`` names one
of them; :func:`resolve_model` turns it into a ``ckpt:`` spec of a local copy, which
``load_classifier`` reads like any other checkpoint. Other specs pass through unchanged.

Ray workers may run on other nodes than the driver: :class:`PortableModel` carries a
checkpoint's bytes with its spec and writes them back to a local file in the worker.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from trustflow import names
from trustflow.data.store import ArtifactStore
from trustflow.errors import ConfigError, InputError, TrustflowError
from trustflow.models.vision.spec import (
    CHECKPOINT,
    RUN,
    TORCHSCRIPT,
    classifier_spec,
    read_checkpoint,
    save_checkpoint,
    spec_file,
)
from trustflow.registry import Options, validate_options

RUN_MODELS = ("best", "final")


class RunOptions(Options):
    target: str  # <run_id>[/best|/final]


def run_checkpoint_path(store: ArtifactStore, run_id: str, which: str) -> str:
    """Where training run ``run_id`` keeps its ``which`` ("best" or "final") checkpoint."""
    return store.path("runs", names.ADVERSARIAL_TRAIN, run_id, "model", f"{which}.pt")


def store_run_checkpoint(
    store: ArtifactStore, run_id: str, which: str, model: nn.Module, arch: str, meta: Mapping[str, Any]
) -> str:
    """Write ``model`` as the ``which`` checkpoint of training run ``run_id``; returns its path."""
    target = run_checkpoint_path(store, run_id, which)
    with tempfile.TemporaryDirectory() as tmp:
        path = save_checkpoint(Path(tmp) / f"{which}.pt", model, arch, dict(meta))
        store.write_bytes_atomic(target, path.read_bytes())
    return target


def run_checkpoint_label(store: ArtifactStore, run_id: str, which: str) -> str:
    """How errors name a training run's checkpoint: its location in the store."""
    return f"{store.url}/runs/{names.ADVERSARIAL_TRAIN}/{run_id}/model/{which}.pt"


def _run_target(spec: str) -> tuple[str, str]:
    """(run id, best|final) of a ``run:`` spec; ``ConfigError`` when malformed."""
    options = validate_options(f"model {spec!r}", RunOptions, classifier_spec(spec).options)
    run_id, _, which = options.target.partition("/")
    which = which or "best"
    if not run_id or which not in RUN_MODELS:
        raise ConfigError(f"model {spec!r}: use run:<id>, run:<id>/best or run:<id>/final")
    return run_id, which


def resolve_model(store: ArtifactStore, spec: str, workdir: Path) -> str:
    """``run:<id>[/best|/final]`` → ``ckpt:`` of a copy in ``workdir``; other specs unchanged."""
    parsed = classifier_spec(spec)
    if parsed.name != RUN:
        return spec
    run_id, which = _run_target(spec)
    try:
        data = store.read_bytes(run_checkpoint_path(store, run_id, which))
    except (FileNotFoundError, OSError):
        raise InputError(f"model {spec!r}: no checkpoint at {run_checkpoint_label(store, run_id, which)}") from None
    local = workdir / f"{run_id}-{which}.pt"
    local.write_bytes(data)
    return f"{CHECKPOINT}:{local}"


def check_local_model(spec: str) -> None:
    """Fail fast, before any service starts, on a model spec whose local file is missing or
    unsafe: a ``ckpt:`` file must be a weights-only checkpoint, a ``torchscript:`` file must
    exist. Architecture specs are parsed (a malformed one is a ``ConfigError``); ``run:``
    specs need the store and are checked by :meth:`PortableModel.of`."""
    parsed = classifier_spec(spec)
    if parsed.name == CHECKPOINT:
        read_checkpoint(spec_file(parsed))
    elif parsed.name == TORCHSCRIPT:
        path = spec_file(parsed)
        if not path.is_file():
            raise InputError(f"{path}: TorchScript file not found (spec {spec!r})")
    elif parsed.name == RUN:
        _run_target(spec)


@dataclass(frozen=True)
class PortableModel:
    """A classifier spec a Ray worker on any node can load: a checkpoint travels as bytes.

    ``label`` is the spec as the user gave it (``run:...``); ``spec`` what to load;
    ``source`` how errors name the checkpoint file (the user's path, or the store location of
    a ``run:`` checkpoint), never the temporary copy a worker loads."""

    label: str
    spec: str
    blob: bytes = b""
    source: str = ""

    @classmethod
    def of(cls, store: ArtifactStore, spec: str) -> PortableModel:
        """Resolve ``spec`` and, for a checkpoint, read and check it here, in the driver: a
        missing or unsafe file fails before any worker runs, under the name the user knows."""
        parsed = classifier_spec(spec)
        if parsed.name == RUN:
            run_id, which = _run_target(spec)
            source = run_checkpoint_label(store, run_id, which)
        elif parsed.name == CHECKPOINT:
            source = str(spec_file(parsed))
        else:  # an architecture, or a TorchScript file the worker opens itself (under its own path)
            return cls(spec, spec)
        with tempfile.TemporaryDirectory() as tmp:
            local = resolve_model(store, spec, Path(tmp))
            path = spec_file(classifier_spec(local))
            read_checkpoint(path, label=source)
            return cls(spec, local, path.read_bytes(), source)

    @contextlib.contextmanager
    def local_spec(self) -> Iterator[str]:
        """The spec to load here: the checkpoint written to a temporary file, or the spec itself.

        A ``TrustflowError`` raised while the caller loads it names ``source`` instead of
        the temporary file."""
        if not self.blob:
            yield self.spec
            return
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.pt"
            path.write_bytes(self.blob)
            try:
                yield f"{CHECKPOINT}:{path}"
            except TrustflowError as exc:
                raise type(exc)(str(exc).replace(str(path), self.source or self.label)) from None


__all__ = [
    "PortableModel",
    "check_local_model",
    "resolve_model",
    "run_checkpoint_label",
    "run_checkpoint_path",
    "store_run_checkpoint",
]
