"""Helpers for attacks that wrap torchattacks (which seeds torch's global RNG itself)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

TORCHATTACKS_NORMS = {"linf": "Linf", "l2": "L2"}


def canonical_norm(value: Any) -> Any:
    """``Linf``/``LINF``/``linf`` → ``linf``; ``L2`` → ``l2`` (pydantic checks the rest)."""
    return value.lower() if isinstance(value, str) else value


@contextlib.contextmanager
def isolated_rng(device: torch.device) -> Iterator[None]:
    """torchattacks calls ``torch.manual_seed(seed)``: keep that from leaking to the caller."""
    devices = (
        [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    )
    with torch.random.fork_rng(devices=devices):
        yield


@torch.no_grad()
def num_classes_of(model: torch.nn.Module, x: torch.Tensor) -> int:
    return int(model(x[:1]).shape[1])
