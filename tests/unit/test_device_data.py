"""Gummel measurement files (issue 20): validation errors name file, row and column; clipped
points are flagged and counted; the ``gummel`` dataset kind ingests and re-ingests without
duplicating a point."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from trustflow import names
from trustflow.data.device.gummel import read_gummel
from trustflow.data.store import ArtifactStore
from trustflow.errors import InputError
from trustflow.tasks.device.synthetic import DeviceTruth, LabConfig, gummel_rows
from trustflow.tasks.ingest import INGESTERS

FIELDS = ["device_id", "width_um", "length_um", "temperature_k", "v_be", "v_ce", "v_cb", "v_sub", "i_c", "i_b"]
FIELDS += ["compliance_a", "noise_floor_a"]


def _rows(lab: LabConfig | None = None) -> list[dict[str, Any]]:
    return gummel_rows(DeviceTruth(), lab or LabConfig(points=20), [4.0], [0.0, 3.0])


def _csv(path: Path, rows: list[dict[str, Any]], fields: list[str] = FIELDS) -> Path:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows({k: ("" if r.get(k) is None else r.get(k)) for k in fields} for r in rows)
    return path


def test_a_clean_csv_and_parquet_read_the_same_and_clipped_points_are_counted(tmp_path: Path) -> None:
    rows = _rows(LabConfig(points=20, compliance_a=1e-4))
    data = read_gummel(_csv(tmp_path / "g.csv", rows))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "g.parquet")
    again = read_gummel(tmp_path / "g.parquet")
    assert data.table.num_rows == len(rows) == again.table.num_rows
    assert data.table.column("point_id").to_pylist() == again.table.column("point_id").to_pylist()
    flagged = data.table.column("clipped").to_pylist()
    assert data.clipped == sum(flagged) >= 1
    # exactly the points at compliance are flagged
    assert flagged == [max(r["i_c"], r["i_b"]) >= 0.995e-4 for r in rows]
    assert data.table.column("row_no").to_pylist() == list(range(1, len(rows) + 1))


@pytest.mark.parametrize(
    "row,column,value,message",
    [
        (3, "i_c", "-1e-9", "must be positive"),
        (5, "i_b", "0", "must be positive"),
        (2, "temperature_k", "-269", "°C given"),
        (4, "v_be", "950", "millivolts"),
        (6, "i_c", "abc", "is not a number"),
        (7, "v_sub", "", "missing value"),
        (8, "i_c", "12", "wrong unit"),
    ],
)
def test_bad_values_name_the_file_row_and_column(
    tmp_path: Path, row: int, column: str, value: str, message: str
) -> None:
    rows = _rows()
    rows[row - 1][column] = value
    path = _csv(tmp_path / "bad.csv", rows)
    with pytest.raises(InputError, match=rf"bad\.csv: row {row}, column '{column}': .*{message}"):
        read_gummel(path)


def test_a_shuffled_sweep_and_missing_columns_are_errors(tmp_path: Path) -> None:
    rows = _rows()
    rows[4], rows[5] = rows[5], rows[4]
    with pytest.raises(InputError, match=r"shuffled\.csv: row 6, column 'v_be': .* breaks the monotonic sweep \(row 5"):
        read_gummel(_csv(tmp_path / "shuffled.csv", rows))
    with pytest.raises(InputError, match=r"nocols\.csv: missing column\(s\) i_b"):
        read_gummel(_csv(tmp_path / "nocols.csv", _rows(), [f for f in FIELDS if f != "i_b"]))
    no_bias = [f for f in FIELDS if f not in ("v_ce", "v_cb")]
    with pytest.raises(InputError, match="nobias.csv: missing column v_ce or v_cb"):
        read_gummel(_csv(tmp_path / "nobias.csv", _rows(), no_bias))
    with pytest.raises(InputError, match=r"g\.txt: unsupported file type"):
        (tmp_path / "g.txt").write_text("x")
        read_gummel(tmp_path / "g.txt")


def test_gummel_kind_ingests_a_folder_and_a_rerun_adds_nothing(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    rows = _rows(LabConfig(points=20, compliance_a=1e-4))
    _csv(src / "a.csv", rows[:20])
    _csv(src / "b.csv", rows[20:])
    store = ArtifactStore(f"file://{tmp_path / 'store'}")
    ingest = INGESTERS.create("gummel")
    first = ingest(store, "gummel-x", src)[names.GUMMEL]
    assert first.rows == len(rows) and first.attrs["files"] == 2 and first.attrs["temperatures_k"] == [4.0]
    assert first.attrs["clipped"] >= 1
    again = ingest(store, "gummel-x", src)[names.GUMMEL]
    assert again.rows == len(rows)
    _csv(src / "c.csv", rows[:3])  # the same points in another file are a clear error
    with pytest.raises(InputError, match="appears twice"):
        ingest(store, "gummel-x", src)
