"""Checkpoints of fingerprinted classifiers: the usual weights-only file (``save_checkpoint``)
with the fingerprint options in ``meta["fingerprint"]``, so loading re-inserts the module
(and the pseudo-class head) before the state_dict is applied. Plain checkpoints load too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trustflow.errors import InputError
from trustflow.models.fingerprint.module import FINGERPRINT_META, FingerprintOptions, insert_fingerprint
from trustflow.models.vision.architectures import Classifier, build_classifier
from trustflow.models.vision.spec import read_checkpoint, save_checkpoint
from trustflow.registry import format_spec, parse_spec, validate_options


def save_model(path: str | Path, model: Classifier, arch_spec: str, meta: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (fingerprinted or not) as a weights-only checkpoint."""
    meta = dict(meta or {})
    opts: FingerprintOptions | None = getattr(model, "fingerprint_options", None)
    if opts is not None:
        meta[FINGERPRINT_META] = opts.model_dump()
    return save_checkpoint(path, model, arch_spec, meta)


def load_model(path: str | Path) -> Classifier:
    """The classifier in a checkpoint, with its fingerprint module when it has one (eval mode)."""
    payload = read_checkpoint(path)
    arch = parse_spec(str(payload["arch"]), "checkpoint arch")
    options = {k: v for k, v in arch.options.items() if k != "weights"}
    if "pretrained" in options:
        options["pretrained"] = "false"
    model = build_classifier(
        format_spec(arch.name, options),
        int(payload["num_classes"]),
        int(payload["in_channels"]),
        payload["mean"],
        payload["std"],
    )
    meta = payload["meta"]
    if isinstance(meta, dict) and meta.get(FINGERPRINT_META):
        insert_fingerprint(model, validate_options("fingerprint", FingerprintOptions, meta[FINGERPRINT_META]))
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise InputError(f"{path}: state_dict does not fit {payload['arch']!r}: {str(exc).splitlines()[0]}") from None
    model.meta = meta
    model.arch_spec = str(payload["arch"])  # type: ignore[assignment]
    return model.eval()


__all__ = ["load_model", "save_model"]
