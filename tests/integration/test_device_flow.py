"""device_fit in-process on a tiny synthetic lab (one LBJT, 4 and 300 K, V_sub 0 and 6 V, 24
points per sweep): ingest, fits on Ray, the baseline failing at 4 K, plots, report section, and
the CLI: a ``--json`` rerun after a lost part (resume without duplicates), ``show`` and
``export``."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from trustflow import names
from trustflow.data.store import ArtifactStore, StageRef

pytestmark = [pytest.mark.integration]


def test_device_flow_fits_resumes_reports_and_exports(tmp_path: Path, monkeypatch, ray_cluster) -> None:  # noqa: ANN001
    from trustflow.data.schemas import DEVICE_FITS
    from trustflow.flows.device import device_fit
    from trustflow.flows.ingest import ingest_flow
    from trustflow.settings import load_settings
    from trustflow.tasks.device.synthetic import DeviceTruth, LabConfig, write_lab_csv

    store_url = f"file://{tmp_path / 'store'}"
    monkeypatch.setenv("TRUSTFLOW_STORE_URL", store_url)
    store = ArtifactStore(store_url, load_settings())
    csv = write_lab_csv(tmp_path / "lab.csv", DeviceTruth(), LabConfig(points=24), [4.0, 300.0], [0.0, 6.0])
    dataset = ingest_flow(source=str(csv), kind=names.GUMMEL, store_url=store_url)["dataset_id"]

    first = device_fit(dataset=dataset, per_curve=False, starts=1, max_nfev=200)
    run_id = first["run_id"]
    ref = StageRef(names.DEVICE_FIT, run_id, names.FITS)
    assert store.require_manifest(ref).schema_name == DEVICE_FITS.name
    rows = store.read_table(ref).to_pylist()
    # per T the joint fit across V_sub with both models (per-curve fits: tests/unit); one Ray
    # task (part) per temperature
    assert len(rows) == 4 and first["counts"]["rows_written"] == 4 and first["counts"]["chunks"] == 2
    assert len({r["row_key"] for r in rows}) == 4
    joint = {(f["temperature_k"], f["model"]): f for f in first["fits"]}
    assert set(joint) == {(t, m) for t in (4.0, 300.0) for m in ("cryo4k", "gummel_poon")}
    for t in (4.0, 300.0):
        fit = joint[(t, "cryo4k")]
        assert fit["rms_decades"] < 0.05 and fit["ic_decades"] > 6
        gamma, err = fit["params"]["gamma"]
        assert abs(gamma / 0.004 - 1) < 0.05 and err > 0  # the back-gate coupling, recovered
    (at_4k,) = [b for b in first["baseline"] if b["temperature_k"] == 4.0]
    assert at_4k["ratio"] > 3  # Gummel–Poon cannot follow V_sub at 4 K
    for png in ("gummel.png", "beta.png", "residuals.png"):
        assert store.read_bytes(store.path("runs", names.DEVICE_FIT, run_id, "plots", png))[:4] == b"\x89PNG"

    from trustflow.tasks.report.build import build_leaderboard_report, build_run_report

    html = build_run_report(store, run_id)
    assert "Device-model fits" in html and "residuals.png" in html and "cryo4k: fitted parameters" in html
    assert "Cryogenic device-model fits" in build_leaderboard_report(store)

    # the CLI reruns after one temperature's part was lost: only its fits run again, no duplicates
    from typer.testing import CliRunner

    from trustflow.cli.main import app

    lost = store.writer(ref, DEVICE_FITS, ["row_key"]).part_files()[0]
    n_lost = len(pq.read_table(lost.path, filesystem=store.fs))
    store.fs.delete_file(lost.path)
    cli = CliRunner()
    args = ["device", "fit", dataset, "--joint-only", "--starts", "1", "--max-nfev", "200", "--json"]
    out = cli.invoke(app, args)
    assert out.exit_code == 0, out.output
    rerun = json.loads(out.stdout)
    assert rerun["run_id"] == run_id and n_lost == 2
    assert rerun["counts"]["rows_written"] == 2 and rerun["counts"]["units_done_before"] == 2
    assert len({r["row_key"] for r in store.read_table(ref).to_pylist()}) == store.read_table(ref).num_rows == 4

    out = cli.invoke(app, ["device", "show", run_id, "--json"])
    assert out.exit_code == 0, out.output
    assert len(json.loads(out.stdout)["fits"]) == 4
    out = cli.invoke(app, ["device", "export", run_id, "--out", str(tmp_path / "spice"), "--json"])
    assert out.exit_code == 0, out.output
    files = json.loads(out.stdout)["files"]
    assert [f["temperature_k"] for f in files] == [4.0, 300.0]
    assert all(".subckt lbjt_cryo4k_" in Path(f["path"]).read_text() for f in files)
    # a finished run: nothing to do, no Ray task
    out = cli.invoke(app, args)
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["counts"]["chunks"] == 0
