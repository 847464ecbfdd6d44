"""asr_train + asr_evaluate in-process on a tiny conv-CTC and 8 espeak sentences: checkpoints on
Ray Train, per-utterance rows, resume without duplicates, leaderboard, plot, CLI --json rerun."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trustflow import names
from trustflow.data.store import ArtifactStore, StageRef

pytestmark = [pytest.mark.integration]

TINY = "conv-ctc?width=32&blocks=1&kernel=5"


def test_train_evaluate_resume(tmp_path: Path, monkeypatch, ray_cluster) -> None:  # noqa: ANN001
    from trustflow.data.schemas import ASR_LEADERBOARD, ASR_RESULTS
    from trustflow.data.speech.utterances import make_sentences
    from trustflow.flows.asr import asr_evaluate, asr_train
    from trustflow.flows.ingest import ingest_flow
    from trustflow.settings import load_settings

    store_url = f"file://{tmp_path / 'store'}"
    monkeypatch.setenv("TRUSTFLOW_STORE_URL", store_url)
    text = tmp_path / "sentences.txt"
    text.write_text("\n".join(make_sentences(8, 0)) + "\n")
    data = str(ingest_flow(source=str(text), kind="espeak", store_url=store_url)["dataset_id"])
    options = {"model": TINY, "epochs": 1, "batch_size": 4, "max_steps": 2}
    trained = asr_train(dataset=data, methods=["plain", "wapat"], **options)
    runs = {r["method"]: r for r in trained["runs"]}
    assert set(runs) == {"plain", "wapat"} and not any(r["skipped"] for r in runs.values())
    assert all(len(r["epochs"]) == 1 and r["utterances_per_s"] > 0 and r["train_rows"] == 8 for r in runs.values())
    again = asr_train(dataset=data, methods=["plain"], **options)
    assert again["runs"][0]["skipped"] and again["runs"][0]["run_id"] == runs["plain"]["run_id"]

    models = [f"run:{runs['plain']['run_id']}", runs["wapat"]["run_id"]]
    args = {"models": models, "datasets": [data], "shifts": ["telephone", "noise?snr_db=0"], "shard": 5}
    result = asr_evaluate(**args)
    store = ArtifactStore(store_url, load_settings())
    ref = StageRef(names.ASR_EVALUATE, result["run_id"], names.RESULTS)
    rows = store.read_table(ref).to_pylist()
    assert store.require_manifest(ref).schema_name == ASR_RESULTS.name
    assert result["results"]["chunks"] == 2 * 3 * 2  # models x (clean + 2 shifts) x shards of 5
    assert len(rows) == 2 * 3 * 8 and len({r["row_key"] for r in rows}) == len(rows)
    assert {r["domain"] for r in rows} == {"espeak", "espeak+telephone", "espeak+noise?snr_db=0"}
    assert all(0 <= r["word_errors"] and r["words"] > 0 and r["decode_s"] > 0 for r in rows)
    # the same shifted audio for both models: the clean rows' references line up per utterance
    board = result["leaderboard"]
    assert store.require_manifest(StageRef(names.ASR_EVALUATE, result["run_id"], names.LEADERBOARD)).schema_name == (
        ASR_LEADERBOARD.name
    )
    assert len(board) == 2 * 4  # 3 domains + the ood mean per model
    for b in board:
        mine = [r for r in rows if r["model"] == b["model"] and r["domain"] == b["domain"]]
        if b["domain"] == "ood-mean":
            continue
        assert b["wer"] == pytest.approx(sum(r["word_errors"] for r in mine) / sum(r["words"] for r in mine))
        assert b["wer_lo"] <= b["wer"] <= b["wer_hi"] and b["ood"] == (b["domain"] != "espeak")
    png = store.read_bytes(store.path("runs", names.ASR_EVALUATE, result["run_id"], "plots", "wer_by_domain.png"))
    assert png[:4] == b"\x89PNG"

    # the CLI reruns the evaluation (--json is one document): every unit found done, no new rows
    from typer.testing import CliRunner

    from trustflow.cli.main import app

    out = CliRunner().invoke(app, ["asr", "eval", "--model", models[0], "--model", models[1], "--dataset", data,
                                   "--shift", "telephone", "--shift", "noise?snr_db=0", "--shard", "5", "--json"])  # fmt: skip
    assert out.exit_code == 0, out.output
    rerun = json.loads(out.stdout)
    assert rerun["run_id"] == result["run_id"] and rerun["results"]["chunks_skipped"] == rerun["results"]["chunks"]
    assert len(store.read_table(ref)) == len(rows)
