"""Classifier spec strings → ``nn.Module`` taking images in [0, 1] (NCHW).

One string names a classifier and where its weights come from, in the registry's spec
grammar (``name[:target][?k=v&k=v]``, parsed by ``registry.parse_spec``):

    small_cnn                           a registered architecture (``CLASSIFIERS``), fresh weights
    wide_resnet?depth=16&width=4        ... with its options (checked by its ``Options`` model)
    mobilenet_v2?pretrained=true        ... the packaged ImageNet weights (offline)
    timm:resnet18                       a timm architecture (never downloads)
    timm:resnet18?weights=/w.safetensors  ... with weights from a local file
    ckpt:/path/model.pt                 a checkpoint written by ``save_checkpoint``
    /path/model.pt  |  model.pth        the same, recognised by the .pt/.pth/.ckpt suffix or a
                                        path separator (a shorthand rewritten to ``ckpt:``)
    torchscript:/path/model.ts          a TorchScript classifier (``torch.jit.load``); it must
                                        take [0, 1] inputs, i.e. include its normalisation

``run:<training run>[/best|/final]`` (a checkpoint in the artifact store) is resolved to a
``ckpt:`` file by ``models.vision.resolve`` before it gets here.

A checkpoint is a plain dict (loaded with ``torch.load(weights_only=True)``, so it can hold
no code): ``{"arch": spec, "num_classes", "in_channels", "mean", "std", "state_dict",
"meta"}``. ``arch`` is an architecture spec; loading rebuilds it (``pretrained``/``weights``
options are ignored then: the state_dict holds every weight, Normalize's mean/std included).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from pydantic import Field
from torch import nn

from trustflow.errors import ConfigError, InputError
from trustflow.models.vision.architectures import CLASSIFIERS, Classifier, build_classifier
from trustflow.models.vision.layers import Normalize
from trustflow.models.weights_only import load_weights_only
from trustflow.registry import Options, Spec, format_spec, parse_spec, validate_options

CHECKPOINT = "ckpt"
TORCHSCRIPT = "torchscript"
FILE_SCHEMES = (CHECKPOINT, TORCHSCRIPT)
RUN = "run"  # resolved by models.vision.resolve (needs the store)
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")
CHECKPOINT_KEYS = ("arch", "num_classes", "in_channels", "mean", "std", "state_dict", "meta")
_SCALARS = (str, int, float, bool, type(None))


class FileOptions(Options):
    """The options of ``ckpt:`` and ``torchscript:``: the file, nothing else."""

    target: str = Field(description="path of the file")


def _is_path_shorthand(text: str) -> bool:
    """A bare checkpoint path (``/m/x.pt``, ``runs/x.pth``), not ``name:...`` or ``name?...``."""
    if "?" in text:
        return False
    head = text.partition(":")[0]
    if head in FILE_SCHEMES or head == RUN or head in CLASSIFIERS:
        return False
    return text.lower().endswith(CHECKPOINT_SUFFIXES) or os.sep in text


def classifier_spec(spec: str) -> Spec:
    """Parse a classifier spec (a bare checkpoint path becomes ``ckpt:PATH``); ``ConfigError``
    naming the spec when it is malformed."""
    text = spec.strip() if isinstance(spec, str) else spec
    if isinstance(text, str) and text and _is_path_shorthand(text):
        return Spec(CHECKPOINT, {"target": text}, spec)
    return parse_spec(text, "classifier spec")


def spec_file(parsed: Spec) -> Path:
    """The file a ``ckpt:``/``torchscript:`` spec names (its only option is the path)."""
    options = validate_options(f"classifier spec {parsed.name!r}", FileOptions, parsed.options)
    return Path(options.target).expanduser()


def _check_meta(value: Any, where: str = "meta") -> None:
    if isinstance(value, _SCALARS):
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_meta(v, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ConfigError(f"checkpoint {where} keys must be strings, got {k!r}")
            _check_meta(v, f"{where}.{k}")
        return
    raise ConfigError(
        f"checkpoint {where} is a {type(value).__name__}: only str/int/float/bool/None/list/dict are "
        "allowed (checkpoints load with weights_only=True)"
    )


def save_checkpoint(path: str | Path, model: nn.Module, arch_spec: str, meta: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (a builder's ``Classifier``) as a weights-only checkpoint; atomic rename."""
    parsed = classifier_spec(arch_spec)
    if parsed.name in FILE_SCHEMES or parsed.name == RUN:
        raise ConfigError(f"checkpoint arch must be an architecture spec like 'small_cnn?width=16', got {arch_spec!r}")
    entry, options = CLASSIFIERS.resolve(parsed)
    if not isinstance(model, Classifier) or not isinstance(model[0], Normalize):
        raise ConfigError("save_checkpoint needs a classifier built by trustflow.models.vision (Normalize first)")
    meta = dict(meta or {})
    _check_meta(meta)
    norm: Normalize = model[0]
    payload = {
        "arch": CLASSIFIERS.spec(entry.name, options),
        "num_classes": int(model.num_classes),
        "in_channels": int(norm.channels),
        "mean": [float(v) for v in norm.mean.flatten().tolist()],
        "std": [float(v) for v in norm.std.flatten().tolist()],
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "meta": meta,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


CHECKPOINT_FORMATS = (
    "a checkpoint written by trustflow (a dict of tensors and plain values: ckpt:PATH or run:<id>), "
    "or a TorchScript classifier (torchscript:PATH)"
)


def read_checkpoint(path: str | Path, label: str | None = None) -> dict[str, Any]:
    """The checkpoint dict, validated; ``InputError`` naming the file otherwise.

    ``label`` is how the user knows the file (their path, or the store location of a
    ``run:`` checkpoint) when ``path`` is a local copy: errors name it, not the copy."""
    path = Path(path).expanduser()
    shown = label or str(path)
    if not path.is_file():
        raise InputError(f"{shown}: checkpoint file not found")
    payload = load_weights_only(path, shown, CHECKPOINT_FORMATS)
    if not isinstance(payload, dict):
        raise InputError(
            f"{shown}: checkpoint holds a {type(payload).__name__}, expected a dict with keys "
            f"{', '.join(CHECKPOINT_KEYS)}"
        )
    missing = [k for k in CHECKPOINT_KEYS if k not in payload]
    if missing:
        raise InputError(f"{shown}: checkpoint lacks {', '.join(missing)} (was it written by save_checkpoint?)")
    if not isinstance(payload["state_dict"], dict):
        raise InputError(f"{shown}: checkpoint state_dict is not a dict")
    return payload


def _load_checkpoint(parsed: Spec, num_classes: int | None, in_channels: int | None) -> Classifier:
    path = spec_file(parsed)
    payload = read_checkpoint(path)
    ckpt_classes, ckpt_channels = int(payload["num_classes"]), int(payload["in_channels"])
    if num_classes is not None and int(num_classes) != ckpt_classes:
        raise ConfigError(f"{path}: checkpoint has {ckpt_classes} classes, the data has {num_classes}")
    if in_channels is not None and int(in_channels) != ckpt_channels:
        raise ConfigError(f"{path}: checkpoint takes {ckpt_channels} input channels, the data has {in_channels}")
    arch = parse_spec(str(payload["arch"]), "checkpoint arch")
    if arch.name in FILE_SCHEMES or arch.name == RUN:
        raise InputError(f"{path}: checkpoint arch {payload['arch']!r} is not an architecture spec")
    # the state_dict holds every weight: no pretrained download, no weights file
    options = {k: v for k, v in arch.options.items() if k != "weights"}
    if "pretrained" in options:
        options["pretrained"] = "false"
    model = build_classifier(
        format_spec(arch.name, options), ckpt_classes, ckpt_channels, payload["mean"], payload["std"]
    )
    if isinstance(payload["meta"], dict) and payload["meta"].get("fingerprint"):
        # a provenance-fingerprinted checkpoint (``trustflow train --fingerprint``): its state_dict
        # holds the module and the pseudo-class head, so they go in before the weights do
        from trustflow.models.fingerprint.module import FINGERPRINT_META, FingerprintOptions, insert_fingerprint

        insert_fingerprint(
            model, validate_options("fingerprint", FingerprintOptions, payload["meta"][FINGERPRINT_META])
        )
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        lines = str(exc).splitlines()
        raise InputError(f"{path}: state_dict does not fit arch {payload['arch']!r}: {' '.join(lines[:3])}") from None
    model.meta = payload["meta"]
    return model


def _load_torchscript(parsed: Spec, device: torch.device) -> nn.Module:
    path = spec_file(parsed)
    if not path.is_file():
        raise InputError(f"{path}: TorchScript file not found (spec {parsed.raw!r})")
    try:
        module: nn.Module = torch.jit.load(str(path), map_location=device)
    except Exception as exc:  # noqa: BLE001
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: not a TorchScript module ({first})") from None
    return module


def load_classifier(
    spec: str,
    num_classes: int | None = None,
    in_channels: int | None = 3,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    device: str | torch.device = "cpu",
) -> nn.Module:
    """Load the classifier a spec names, on ``device``, in eval mode.

    ``num_classes`` is required for an architecture spec; for a checkpoint it is checked (a
    mismatch is a ``ConfigError``) and may be ``None``; a TorchScript module is taken as is.
    ``mean``/``std`` only apply to fresh builds: checkpoints carry their own."""
    parsed = classifier_spec(spec)
    device = torch.device(device)
    model: nn.Module
    if parsed.name == TORCHSCRIPT:
        model = _load_torchscript(parsed, device)
    elif parsed.name == CHECKPOINT:
        model = _load_checkpoint(parsed, num_classes, in_channels)
    elif parsed.name == RUN:
        raise ConfigError(f"classifier spec {spec!r}: a run: model needs the store (models.vision.resolve)")
    else:
        if num_classes is None:
            raise ConfigError(f"classifier spec {spec!r}: num_classes is needed to build an architecture")
        model = build_classifier(parsed, int(num_classes), 3 if in_channels is None else int(in_channels), mean, std)
    return model.to(device).eval()


__all__ = [
    "CHECKPOINT_FORMATS",
    "classifier_spec",
    "load_classifier",
    "read_checkpoint",
    "save_checkpoint",
    "spec_file",
]
