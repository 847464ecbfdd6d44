"""fewshot_adapt in-process on the tiny random CNN and digits: episode rows on Ray, robustness
deltas, leaderboard, plots, report section, and the CLI ``--json`` rerun after a lost part
(resume without duplicates) and once finished."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from trustflow import names
from trustflow.data.store import ArtifactStore, StageRef

pytestmark = [pytest.mark.integration]

OPTIONS = {
    "methods": ["prototype", "linear_probe", "safe"],
    "sets": ["digits"],
    "shots": [1, 2],
    "backbone": "tiny_cnn?width=8&size=16",
    "epochs": 2,
    "n_query": 60,
    "robust_n": 12,
    "corruptions": ["gaussian_noise"],
    "chunks_per_set": 2,  # two Ray tasks, two parts
}


def test_fewshot_flow_resume_leaderboard_report_and_cli(tmp_path: Path, monkeypatch, ray_cluster) -> None:  # noqa: ANN001
    from trustflow.data.schemas import FEWSHOT_EPISODES, FEWSHOT_LEADERBOARD
    from trustflow.flows.fewshot import fewshot_adapt
    from trustflow.settings import load_settings

    store_url = f"file://{tmp_path / 'store'}"
    monkeypatch.setenv("TRUSTFLOW_STORE_URL", store_url)
    store = ArtifactStore(store_url, load_settings())

    first = fewshot_adapt(seeds=[0, 1], **OPTIONS)
    run_id = first["run_id"]
    ref = StageRef(names.FEWSHOT_ADAPT, run_id, names.EPISODES)
    assert store.require_manifest(ref).schema_name == FEWSHOT_EPISODES.name
    rows = store.read_table(ref).to_pylist()
    assert len(rows) == 12 and first["episodes"]["rows_written"] == 12 and first["episodes"]["chunks"] == 2
    assert {(r["method"], r["k"], r["seed"]) for r in rows} == {
        (m, k, s) for m in OPTIONS["methods"] for k in (1, 2) for s in (0, 1)
    }
    for r in rows:
        assert 0.0 <= r["accuracy"] <= 1.0 and r["n_query"] == 60 and r["set"] == "digits"
        assert r["delta_attack"] is not None and r["robust_accuracy"] is not None
        assert set(json.loads(r["deltas"])) >= {"clean", "corruption"}
    # the prototype head is the unadapted model itself: zero deltas, the same Σ corruption error
    for r in (r for r in rows if r["method"] == "prototype"):
        assert r["delta_attack"] == 0.0 and r["delta_corruption"] == 0.0 and r["mce_vs_baseline"] == 1.0

    board = first["leaderboard"]
    assert store.require_manifest(StageRef(names.FEWSHOT_ADAPT, run_id, names.LEADERBOARD)).schema_name == (
        FEWSHOT_LEADERBOARD.name
    )
    assert len(board) == 3 * 2 and all(r["seeds"] == 2 for r in board)
    cell = next(r for r in board if r["method"] == "safe" and r["k"] == 2)
    accs = [r["accuracy"] for r in rows if r["method"] == "safe" and r["k"] == 2]
    assert cell["accuracy"] == pytest.approx(sum(accs) / 2) and cell["accuracy_std"] == pytest.approx(
        abs(accs[0] - accs[1]) / 2
    )
    for png in ("accuracy_vs_shots.png", "accuracy_vs_robustness.png"):
        assert store.read_bytes(store.path("runs", names.FEWSHOT_ADAPT, run_id, "plots", png))[:4] == b"\x89PNG"

    from trustflow.tasks.report.build import build_leaderboard_report, build_run_report

    html = build_run_report(store, run_id)
    assert "Few-shot adaptation" in html and "accuracy_vs_shots.png" in html and "linear_probe" in html
    assert "Few-shot adaptation and its robustness" in build_leaderboard_report(store)

    # the CLI reruns the same run after one chunk's part was lost: only that chunk's episodes run
    # again (the same values: episodes are deterministic by seed), nothing else, no duplicates
    from typer.testing import CliRunner

    from trustflow.cli.main import app

    writer = store.writer(ref, FEWSHOT_EPISODES, ["row_key"])
    lost = writer.part_files()[0]
    lost_rows = {r["row_key"]: r for r in store.read_table(ref).to_pylist()}
    n_lost = len(pq.read_table(lost.path, filesystem=store.fs))
    store.fs.delete_file(lost.path)
    from trustflow.tasks.fewshot.stages import cache_ref

    cache = cache_ref({**OPTIONS, "robustness": True, "seeds": [0, 1]}, "digits")
    assert store.read_table(cache).num_rows == 12  # the first run filled the shared episode cache
    store.fs.delete_dir(store.path(cache.relpath))  # so that the lost units are recomputed here
    cli = CliRunner()
    args = ["fewshot", "run", "--methods", "prototype,linear_probe,safe", "--sets", "digits", "--shots", "1,2",
            "--seeds", "0,1", "--backbone", OPTIONS["backbone"], "--epochs", "2", "--n-query", "60",
            "--robust-n", "12", "--corruptions", "gaussian_noise", "--chunks-per-set", "1", "--json"]  # fmt: skip
    out = cli.invoke(app, args)
    assert out.exit_code == 0, out.output
    rerun = json.loads(out.stdout)
    assert rerun["run_id"] == run_id and rerun["episodes"]["chunks"] == 1  # the chunk count is not in the id
    assert (
        0 < n_lost < 12
        and rerun["episodes"]["rows_written"] == n_lost
        and rerun["episodes"]["units_done_before"] == 12 - n_lost
    )
    rows = store.read_table(ref).to_pylist()
    assert len(rows) == 12 and len({r["row_key"] for r in rows}) == 12
    assert all(r["accuracy"] == lost_rows[r["row_key"]]["accuracy"] for r in rows)
    out = cli.invoke(app, ["fewshot", "show", run_id, "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["leaderboard"] == json.loads(json.dumps(board))
    # a finished run: nothing to do, no Ray task
    out = cli.invoke(app, args)
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["episodes"]["chunks"] == 0
    # fewer methods and seeds under the same settings: a new run, all from the episode cache
    subset = fewshot_adapt(**{**OPTIONS, "methods": ["safe"], "shots": [2]}, seeds=[1])
    assert subset["run_id"] != run_id and subset["episodes"]["units_from_cache"] == 1
    assert subset["episodes"]["rows_written"] == 0 and subset["leaderboard"][0]["accuracy"] == pytest.approx(
        lost_rows["safe|digits|2|1"]["accuracy"]
    )

    # --edits: few-shot on an attribute_edits stage's originals, scored per edited attribute
    from trustflow.tests.attribute_fixtures import edit_rows, objects, write_edits

    write_edits(store, StageRef(names.ATTRIBUTE_ROBUSTNESS, "e-few", names.EDITS), edit_rows(objects(10)))
    small = {**OPTIONS, "methods": ["prototype", "safe"], "sets": [], "shots": [1], "robustness": False}
    edited = fewshot_adapt(seeds=[0], edits="e-few", parallel=False, **small)
    rows = store.read_table(StageRef(names.FEWSHOT_ADAPT, edited["run_id"], names.EPISODES)).to_pylist()
    assert {r["method"] for r in rows} == {"prototype", "safe"} and all(
        r["set"].startswith("edits:e-few") for r in rows
    )
    assert all(set(json.loads(r["deltas"])) == {"attr:flip", "drop:flip"} for r in rows)
    from trustflow.tasks.fewshot.stages import edit_summary

    assert all(edit_summary(r) is not None for r in edited["leaderboard"])
    assert "Δ edited acc" in build_run_report(store, edited["run_id"])
