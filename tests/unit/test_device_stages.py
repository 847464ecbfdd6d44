"""device_fit stages without Prefect or Ray: fit units and chunks (resume by key), one fit row
and its point counts, the summaries, the SPICE export files and the CLI's bad-input lines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from trustflow.data.device.gummel import read_gummel
from trustflow.data.schemas import DEVICE_FITS
from trustflow.errors import ConfigError
from trustflow.tasks.device import stages
from trustflow.tasks.device.synthetic import DeviceTruth, LabConfig, write_lab_csv

CONFIG = {"dataset": "gummel-0123456789abcdef", "models": ["cryo4k", "gummel_poon"], "per_curve": True}
CONFIG |= {"starts": 1, "max_nfev": 200, "seed": 0}


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> pa.Table:
    """Two devices, two temperatures, two V_sub curves of 16 points; compliance low enough that
    a few points of each sweep are clipped."""
    folder = tmp_path_factory.mktemp("lab")
    tables = []
    for dev in ("dev-a", "dev-b"):
        lab = LabConfig(points=16, compliance_a=1e-4)
        path = write_lab_csv(folder / f"{dev}.csv", DeviceTruth(device_id=dev), lab, [4.0, 300.0], [0.0, 6.0])
        tables.append(read_gummel(path).table)
    return pa.concat_tables(tables)


def test_units_are_a_joint_fit_and_one_per_curve_for_each_model(table: pa.Table) -> None:
    units = stages.plan_units(table, CONFIG)
    keys = [stages.row_key(u["device_id"], u["temperature_k"], u["v_sub"], u["model"]) for u in units]
    assert len(units) == 2 * 2 * 3 * 2 and len(set(keys)) == len(keys)
    assert keys[:2] == ["dev-a|4|joint|cryo4k", "dev-a|4|joint|gummel_poon"]
    assert "dev-b|300|6|gummel_poon" in keys
    joint_only = stages.plan_units(table, {**CONFIG, "per_curve": False, "models": ["cryo4k"]})
    assert [u["v_sub"] for u in joint_only] == [None] * 4


def test_chunks_are_one_per_device_and_temperature_and_skip_done_keys(table: pa.Table) -> None:
    units = stages.plan_units(table, CONFIG)
    chunks = stages.plan_chunks(table, units, set())
    assert len(chunks) == 4 and all(len(c.payload["units"]) == 6 for c in chunks)
    first = chunks[0].payload["points"]
    assert len(first["v_be"]) == 32 and first["clipped"].any() and not first["clipped"].all()
    assert np.all(first["noise_floor_a"] == 1e-13)
    # the same units make the same part id (an interrupted chunk rewrites its own part)
    assert [c.part_id for c in stages.plan_chunks(table, units, set())] == [c.part_id for c in chunks]
    done = {stages.row_key(u["device_id"], u["temperature_k"], u["v_sub"], u["model"]) for u in units[:7]}
    rest = stages.plan_chunks(table, units, done)
    assert len(rest) == 3 and sum(len(c.payload["units"]) for c in rest) == len(units) - 7
    assert rest[0].part_id != chunks[1].part_id  # dev-a|300 lost one unit: a new part, not a rewrite
    assert stages.plan_chunks(table, units, done | {stages.row_key(**u) for u in units}) == []


def test_one_fit_row_counts_used_excluded_and_clipped_points(table: pa.Table) -> None:
    units = stages.plan_units(table, {**CONFIG, "models": ["cryo4k"]})
    chunk = stages.plan_chunks(table, units, set())[1]  # dev-a at 300 K
    unit = next(u for u in chunk.payload["units"] if u["v_sub"] == 6.0)
    out = pa.Table.from_pylist([stages.fit_row(CONFIG, unit, chunk.payload["points"])], DEVICE_FITS.schema)
    row = out.to_pylist()[0]
    assert row["row_key"] == "dev-a|300|6|cryo4k" and row["v_subs"] == [6.0]
    assert row["n_points"] + row["n_excluded"] == 2 * 16 and 1 <= row["n_clipped"] <= row["n_excluded"]
    assert row["param_names"][2] == "gamma" and row["free"][2] is False and row["stderr"][2] == 0.0
    assert row["units"][row["param_names"].index("re")] == "ohm"
    assert row["rms_decades"] < 0.05 and row["ic_decades"] > 5


def test_summaries_and_the_parameter_table() -> None:
    def row(model: str, t: float, v_sub: float | None, rms: float) -> dict[str, object]:
        return {
            "device_id": "d", "temperature_k": t, "v_sub": v_sub, "v_subs": [0.0, 6.0], "model": model,
            "param_names": ["a", "b"], "values": [1.0, 2.0], "stderr": [0.1, 0.0], "rms_decades": rms,
            "ic_decades": 8.0, "n_points": 10, "n_excluded": 2,
        }  # fmt: skip

    rows = [row("gummel_poon", 4.0, None, 1.2), row("cryo4k", 4.0, 6.0, 0.01), row("cryo4k", 4.0, None, 0.006)]
    fits = stages.summary(rows)
    assert [(f["model"], f["rms_decades"]) for f in fits] == [("cryo4k", 0.006), ("gummel_poon", 1.2)]
    assert fits[0]["params"] == {"a": [1.0, 0.1], "b": [2.0, 0.0]}
    (ratio,) = stages.baseline_ratios(rows)
    assert ratio["ratio"] == pytest.approx(200.0)
    table = stages.parameter_rows(fits)
    assert len(table) == 4 and table[0] | {"RMS [dec]": 0} == {
        "device": "d", "T [K]": 4.0, "model": "cryo4k", "parameter": "a", "value": "1", "stderr": "0.1", "RMS [dec]": 0,
    }  # fmt: skip


def test_check_config_names_the_option() -> None:
    with pytest.raises(ConfigError, match="not a gummel dataset"):
        stages.check_config({**CONFIG, "dataset": "coco-0123"})
    with pytest.raises(ConfigError, match="--models: unknown compact model 'bjt'"):
        stages.check_config({**CONFIG, "models": ["bjt"]})
    with pytest.raises(ConfigError, match="--starts"):
        stages.check_config({**CONFIG, "starts": 0})
    assert stages.run_id_of(CONFIG) == stages.run_id_of(dict(reversed(CONFIG.items())))
    assert stages.run_id_of(CONFIG) != stages.run_id_of({**CONFIG, "seed": 1})


def test_export_writes_one_named_subcircuit_per_fit(tmp_path: Path) -> None:
    from trustflow.models.device.cryo4k import Cryo4K
    from trustflow.tasks.device.export import write_subcircuits

    p = DeviceTruth().vector(4.0)
    rows = [
        {
            "device_id": "W1/L0.1",
            "temperature_k": t,
            "model": "cryo4k",
            "values": list(p),
            "rms_decades": 0.01,
            "v_subs": [0.0],
        }  # fmt: skip
        for t in (4.0, 77.0)
    ]
    written = write_subcircuits(rows, tmp_path)
    assert [w["subckt"] for w in written] == ["lbjt_cryo4k_4k_w1_l0_1", "lbjt_cryo4k_77k_w1_l0_1"]
    text = Path(written[0]["path"]).read_text()
    assert Path(written[0]["path"]).parent.name == "w1_l0_1"
    assert ".subckt lbjt_cryo4k_4k_w1_l0_1 c b e sub" in text and text.rstrip().endswith(".ends lbjt_cryo4k_4k_w1_l0_1")
    assert f"re={p[Cryo4K.index('re')]:.17g}" in text
    assert write_subcircuits(rows, tmp_path) == written and Path(written[0]["path"]).read_text() == text


@pytest.mark.parametrize(
    "args,message",
    [
        (["fit", "coco-0123"], "not a gummel dataset id"),
        (["fit", "gummel-0123", "--models", "cryo4k,bjt"], "--models: unknown compact model 'bjt'"),
        (["fit", "gummel-0123", "--starts", "0"], "--starts: must be >= 1"),
        (["show", "fewshot-0123"], "not a device_fit run id"),
        (["export", "device-0123", "--model", "bjt"], "--model: unknown compact model 'bjt'"),
    ],
)
def test_cli_bad_input_is_one_error_line(args: list[str], message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from trustflow.cli import device
    from trustflow.cli.main import app

    def no_services() -> None:
        raise AssertionError("bootstrap started before the input was checked")

    monkeypatch.setattr(device, "bootstrap", no_services)
    out = CliRunner().invoke(app, ["device", *args])
    assert out.exit_code != 0
    lines = [ln for ln in out.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], out.output


def test_device_is_a_demo_pipeline_outside_the_default_set() -> None:
    from trustflow.flows.demos.base import DEFAULT_PIPELINES, DEMO_PIPELINES, select_pipelines

    assert "device" in DEMO_PIPELINES.names() and "device" not in DEFAULT_PIPELINES
    assert select_pipelines(["device"]) == ["device"]
