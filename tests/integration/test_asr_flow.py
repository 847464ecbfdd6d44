"""asr_train + asr_evaluate in-process on a tiny conv-CTC and 6 espeak sentences (one method, one
shift, two steps: the suite's time budget): a checkpoint on Ray Train, per-utterance rows,
resume without duplicates (both CLI commands rerun with --json), leaderboard, plot."""

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
    text.write_text("\n".join(make_sentences(6, 0)) + "\n")
    data = str(ingest_flow(source=str(text), kind="espeak?seed=1", store_url=store_url)["dataset_id"])
    assert data.startswith("espeak-")  # a kind spec with options (part of the id)
    options = {"model": TINY, "epochs": 1, "batch_size": 4, "max_steps": 2}
    trained = asr_train(dataset=data, methods=["wapat"], **options)
    (run,) = trained["runs"]
    assert run["method"] == "wapat" and not run["skipped"] and run["train_rows"] == 6
    assert len(run["epochs"]) == 1 and run["utterances_per_s"] > 0

    from typer.testing import CliRunner

    from trustflow.cli.main import app

    # the CLI reruns the training (--json is one document): the job is found done, not retrained
    out = CliRunner().invoke(app, ["asr", "train", "--dataset", data, "--methods", "wapat", "--model", TINY,
                                   "--epochs", "1", "--batch-size", "4", "--max-steps", "2", "--json"])  # fmt: skip
    assert out.exit_code == 0, out.output
    (again,) = json.loads(out.stdout)["runs"]
    assert again["skipped"] and again["run_id"] == run["run_id"]

    models = [f"run:{run['run_id']}"]
    # in-process parts (parallel=False): a cold Ray worker importing torch cost ~15 s of this test;
    # the Ray fan-out is the shared write_parts_on_ray, and the demo runs this stage on Ray
    args = {"models": models, "datasets": [data], "shifts": ["telephone"], "shard": 4, "parallel": False}
    result = asr_evaluate(**args)
    store = ArtifactStore(store_url, load_settings())
    ref = StageRef(names.ASR_EVALUATE, result["run_id"], names.RESULTS)
    rows = store.read_table(ref).to_pylist()
    assert store.require_manifest(ref).schema_name == ASR_RESULTS.name
    assert result["results"]["chunks"] == 2 * 2  # (clean + 1 shift) x shards of 4
    assert len(rows) == 2 * 6 and len({r["row_key"] for r in rows}) == len(rows)
    assert {r["domain"] for r in rows} == {"espeak", "espeak+telephone"}
    assert all(r["word_errors"] >= 0 and r["words"] > 0 and r["decode_s"] > 0 for r in rows)
    board = result["leaderboard"]
    assert store.require_manifest(StageRef(names.ASR_EVALUATE, result["run_id"], names.LEADERBOARD)).schema_name == (
        ASR_LEADERBOARD.name
    )
    assert len(board) == 2 + 1  # 2 domains + the ood mean
    for b in board:
        mine = [r for r in rows if r["domain"] == b["domain"]]
        if b["domain"] == "ood-mean":
            assert b["wer"] == pytest.approx(next(c["wer"] for c in board if c["domain"] == "espeak+telephone"))
            continue
        assert b["wer"] == pytest.approx(sum(r["word_errors"] for r in mine) / sum(r["words"] for r in mine))
        assert b["wer_lo"] <= b["wer"] <= b["wer_hi"] and b["ood"] == (b["domain"] != "espeak")
    png = store.read_bytes(store.path("runs", names.ASR_EVALUATE, result["run_id"], "plots", "wer_by_domain.png"))
    assert png[:4] == b"\x89PNG"

    # continuous evaluation: a speech-recognizer model card gets asr_evaluate; the same units
    # as above, so the card's evaluation is that run (every part found done, nothing recomputed)
    from trustflow.flows.continuous import evaluate_model_card

    card_text = f"name: ctc-a\nkind: speech-recognizer\nmodel: run:{run['run_id']}\nasr:\n  datasets: [{data}]\n"
    card_text += "  shifts: [telephone]\n  shard: 4\n"
    store.write_bytes_atomic(store.path("models", "ctc-a.yaml"), card_text.encode())
    card = evaluate_model_card(key="models/ctc-a.yaml", etag="e1")
    assert {r["run_id"] for r in card["rows"]} == {result["run_id"]}
    assert {(r["metric"], r["value"]) for r in card["rows"]} == {(f"wer {b['domain']}", b["wer"]) for b in board}
    assert all(r["kind"] == "speech-recognizer" and r["evaluation"] == "speech" for r in card["rows"])

    from trustflow.tasks.report.build import build_leaderboard_report, build_run_report

    page = build_run_report(store, result["run_id"])
    first = min((r for r in rows if r["domain"] == "espeak"), key=lambda r: r["utt_id"])  # shown as an example
    assert "Example transcripts" in page and first["reference"] in page and "wer_by_domain" in page
    assert "Speech recognition under domain shifts" in build_leaderboard_report(store)
    assert "Utterances/s" in build_run_report(store, run["run_id"])

    # the CLI reruns the evaluation (--json is one document): every unit found done, no new rows
    out = CliRunner().invoke(app, ["asr", "eval", "--model", models[0], "--dataset", data, "--shift", "telephone",
                                   "--shard", "4", "--json"])  # fmt: skip
    assert out.exit_code == 0, out.output
    rerun = json.loads(out.stdout)
    assert rerun["run_id"] == result["run_id"] and rerun["results"]["chunks_skipped"] == rerun["results"]["chunks"]
    assert len(store.read_table(ref)) == len(rows)
