"""SPICE export of a device_fit run: one ngspice subcircuit file per (device, T) joint fit.

Why per temperature: the subcircuit carries the effective thermal voltage as a parameter (the
simulator's own temperature is never used; models/device/spice.py), so each temperature is its
own ``.subckt``. The device id goes into the subcircuit name, so a netlist can include several
devices' files at once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trustflow.models.device.base import COMPACT_MODELS
from trustflow.models.device.spice import subcircuit, subckt_name


def safe_name(text: str) -> str:
    """A file/SPICE-name-safe form of a device id (letters, digits, underscore)."""
    return re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower() or "device"


def write_subcircuits(rows: Sequence[Mapping[str, Any]], out: Path) -> list[dict[str, Any]]:
    """Write ``out/<device>/<subckt>.lib`` for each fit row (atomically: temp file, rename);
    returns what was written. Rewriting the same run gives the same bytes."""
    written = []
    for r in rows:
        model = COMPACT_MODELS.get(r["model"])
        device = safe_name(r["device_id"])
        name = f"{subckt_name(model, r['temperature_k'])}_{device}"
        text = subcircuit(model, np.asarray(r["values"], dtype=float), r["temperature_k"], name=name)
        text = f"* device {r['device_id']}, RMS {r['rms_decades']:.4f} decades over V_sub {r['v_subs']}\n{text}"
        path = out / device / f"{name}.lib"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        tmp.replace(path)
        written.append(
            {"device_id": r["device_id"], "temperature_k": r["temperature_k"], "subckt": name, "path": str(path)}
        )
    return written


__all__ = ["safe_name", "write_subcircuits"]
