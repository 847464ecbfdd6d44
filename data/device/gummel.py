"""Read and validate Gummel measurements (CSV or Parquet) into ``GUMMEL`` rows.

Why strict: a fit silently run on millivolts read as volts, °C read as K, or a sweep whose
rows were shuffled gives plausible-looking but wrong parameters. So every check fails with
one ``InputError`` naming the file, the 1-based data row and the column. Compliance-clipped
points are not an error — the instrument reports them — so they are flagged (``clipped``)
and counted, and fits leave them out.

Required columns: device_id, temperature_k, v_be, v_sub, i_c, i_b and one of v_ce / v_cb.
Optional: width_um, length_um, compliance_a, noise_floor_a.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from trustflow.data.schemas import GUMMEL
from trustflow.errors import InputError

REQUIRED = ("device_id", "temperature_k", "v_be", "v_sub", "i_c", "i_b")
OPTIONAL = ("width_um", "length_um", "v_ce", "v_cb", "compliance_a", "noise_floor_a")
NUMERIC = (
    "width_um",
    "length_um",
    "temperature_k",
    "v_be",
    "v_ce",
    "v_cb",
    "v_sub",
    "i_c",
    "i_b",
    "compliance_a",
    "noise_floor_a",
)
T_RANGE = (0.1, 500.0)  # [K]: below → not kelvin (°C?); above → not a cryostat or probe station
V_MAX = 5.0  # [V]: |V_BE| above this is millivolts read as volts
I_MAX = 1.0  # [A]: above this is µA/nA read as A
CLIP_TOL = 0.995  # a current at ≥ 99.5 % of compliance counts as clipped


@dataclass
class GummelData:
    """Validated rows (GUMMEL layout) and the count of compliance-clipped points."""

    table: pa.Table
    clipped: int


def _read(path: Path) -> pa.Table:
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pacsv.read_csv(path)
        if suffix == ".parquet":
            return pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None
    raise InputError(f"{path}: unsupported file type {suffix!r} (use .csv or .parquet)")


def point_id(row: dict[str, Any]) -> str:
    bias = row["v_ce"] if row["v_ce"] is not None else f"cb{row['v_cb']}"
    key = f"{row['device_id']}|{row['temperature_k']:.6g}|{bias}|{row['v_sub']:.6g}|{row['v_be']:.9g}"
    return hashlib.sha256(key.encode()).hexdigest()[:20]


def _number(path: Path, n: int, col: str, value: Any, required: bool) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        if required:
            raise InputError(f"{path}: row {n}, column {col!r}: missing value")
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{path}: row {n}, column {col!r}: {value!r} is not a number") from None
    if not math.isfinite(x):
        raise InputError(f"{path}: row {n}, column {col!r}: {value!r} is not finite")
    return x


def _check_row(path: Path, n: int, row: dict[str, Any]) -> None:
    t = row["temperature_k"]
    if not T_RANGE[0] <= t <= T_RANGE[1]:
        raise InputError(f"{path}: row {n}, column 'temperature_k': {t} is outside {T_RANGE} K (°C given?)")
    for col in ("v_be", "v_ce", "v_cb", "v_sub"):
        v = row[col]
        if v is not None and abs(v) > (V_MAX if col == "v_be" else 50.0):
            raise InputError(f"{path}: row {n}, column {col!r}: {v} V is out of range (millivolts given?)")
    for col in ("i_c", "i_b"):
        i = row[col]
        if i <= 0:
            raise InputError(f"{path}: row {n}, column {col!r}: current {i} A must be positive (magnitudes)")
        if i > I_MAX:
            raise InputError(f"{path}: row {n}, column {col!r}: {i} A is above {I_MAX} A (wrong unit?)")
    if row["v_ce"] is None and row["v_cb"] is None:
        raise InputError(f"{path}: row {n}, columns 'v_ce'/'v_cb': one of them must be set")


def read_gummel(path: Path) -> GummelData:
    """Validated rows of one measurement file; errors name file, row and column."""
    raw = _read(path)
    missing = [c for c in REQUIRED if c not in raw.column_names]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}")
    if "v_ce" not in raw.column_names and "v_cb" not in raw.column_names:
        raise InputError(f"{path}: missing column v_ce or v_cb")
    rows: list[dict[str, Any]] = []
    for n, src in enumerate(raw.to_pylist(), start=1):
        device = src.get("device_id")
        if device is None or str(device).strip() == "":
            raise InputError(f"{path}: row {n}, column 'device_id': missing value")
        row: dict[str, Any] = {"device_id": str(device)}
        for col in NUMERIC:
            row[col] = _number(path, n, col, src.get(col), col in REQUIRED)
        _check_row(path, n, row)
        comp = row["compliance_a"]
        row["clipped"] = comp is not None and max(row["i_c"], row["i_b"]) >= CLIP_TOL * comp
        row["source"] = path.name
        row["row_no"] = n
        row["point_id"] = point_id(row)
        rows.append(row)
    if not rows:
        raise InputError(f"{path}: no data rows")
    _check_sweeps(path, rows)
    table = pa.Table.from_pylist(rows, schema=GUMMEL.schema)
    return GummelData(table, sum(bool(r["clipped"]) for r in rows))


def _check_sweeps(path: Path, rows: list[dict[str, Any]]) -> None:
    """Within one sweep (device, T, V_CE/V_CB, V_sub) V_BE must be strictly monotonic in file
    order: a repeated or out-of-order V_BE means a merged or shuffled file."""
    last: dict[tuple[Any, ...], tuple[float, int, float | None]] = {}
    for r in rows:
        key = (r["device_id"], r["temperature_k"], r["v_ce"], r["v_cb"], r["v_sub"])
        v = r["v_be"]
        if key in last:
            prev, prev_row, direction = last[key]
            step = v - prev
            if step == 0 or (direction is not None and step * direction < 0):
                raise InputError(
                    f"{path}: row {r['row_no']}, column 'v_be': {v} V breaks the monotonic sweep "
                    f"(row {prev_row} has {prev} V)"
                )
            last[key] = (v, r["row_no"], direction if direction is not None else math.copysign(1.0, step))
        else:
            last[key] = (v, r["row_no"], None)
