"""fairness_train + fairness_evaluate in-process on a tiny random BERT and 96 texts: checkpoints
on Ray Train, metric rows, resume without duplicates, transfer, leaderboard, report section."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from trustflow import names
from trustflow.data.store import ArtifactStore, StageRef

pytestmark = [pytest.mark.integration]

WORDS = [
    "good",
    "great",
    "fine",
    "bad",
    "awful",
    "poor",
    "she",
    "he",
    "her",
    "his",
    "woman",
    "man",
    "the",
    "a",
    "day",
    "was",
    "it",
]


def tiny_bert(out: Path) -> Path:
    """A 1-layer, 32-wide random BERT with a word-level vocabulary (a transformers folder)."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    out.mkdir(parents=True)
    vocab = out / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=5 + len(WORDS),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(out)
    BertTokenizer(str(vocab)).save_pretrained(out)
    return out


def texts_csv(path: Path) -> Path:
    """96 texts: sentiment words decide the label; the gender word agrees with it 3 times in 4."""
    rows = []
    for i in range(96):
        label = i % 2
        word = ["good", "great", "fine"][i % 3] if label else ["bad", "awful", "poor"][i % 3]
        female = (i % 4 != 0) == bool(label)
        who = "she" if female else "he"
        rows.append([f"{who} was {word} the day {'a ' * (i % 5)}".strip(), "pos" if label else "neg",
                     "f" if female else "m"])  # fmt: skip
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label", "attribute"])
        w.writerows(rows)
    return path


def test_train_evaluate_resume_transfer_and_report(tmp_path: Path, monkeypatch, ray_cluster) -> None:  # noqa: ANN001
    from trustflow.data.schemas import FAIRNESS_LEADERBOARD, FAIRNESS_METRICS
    from trustflow.flows.fairness import fairness_evaluate, fairness_train
    from trustflow.flows.ingest import ingest_flow
    from trustflow.settings import load_settings

    store_url = f"file://{tmp_path / 'store'}"
    monkeypatch.setenv("TRUSTFLOW_STORE_URL", store_url)
    encoder = str(tiny_bert(tmp_path / "bert"))
    data = ingest_flow(source=str(texts_csv(tmp_path / "mine.csv")), kind="fairness-texts", store_url=store_url)[
        "dataset_id"
    ]
    store = ArtifactStore(store_url, load_settings())
    splits = store.read_table(StageRef(names.INGEST, data, names.TEXTS)).column("split").to_pylist()
    n_train, n_test = splits.count("train"), splits.count("test")
    assert n_train > 20 and n_test > 4  # hash splits: about one in five is test
    options = {"encoder": encoder, "epochs": 2, "batch_size": 8, "max_length": 16}
    trained = fairness_train(dataset=data, methods=["plain", "fairberts?width=16"], **options)
    runs = {r["method"]: r for r in trained["runs"]}
    assert set(runs) == {"plain", "fairberts?width=16"} and not any(r["skipped"] for r in runs.values())
    assert all(len(r["epochs"]) == 2 and r["samples_per_s"] > 0 for r in runs.values())
    assert runs["plain"]["train_rows"] == n_train and runs["plain"]["groups"] == ["f", "m"]
    again = fairness_train(dataset=data, methods=["plain"], **options)
    assert again["runs"][0]["skipped"] and again["runs"][0]["run_id"] == runs["plain"]["run_id"]

    plain, fair = runs["plain"]["run_id"], runs["fairberts?width=16"]["run_id"]
    args = {
        "models": [f"run:{plain}", fair],
        "transfer": [f"{fair}>{plain}"],
        "eec_pairs": 20,
        "bootstrap": 20,
    }
    result = fairness_evaluate(**args)
    metrics_ref = StageRef(names.FAIRNESS_EVALUATE, result["run_id"], names.METRICS)
    rows = store.read_table(metrics_ref).to_pylist()
    assert store.require_manifest(metrics_ref).schema_name == FAIRNESS_METRICS.name
    models = {plain, fair, f"{fair}>{plain}"}
    assert {r["model"] for r in rows} == models
    for model in models:
        mine = {(r["dataset"], r["group"], r["metric"]): r for r in rows if r["model"] == model}
        acc = mine[(data, "all", "accuracy")]
        assert acc["n"] == n_test and acc["lo"] <= acc["value"] <= acc["hi"]
        assert {g for (_, g, m) in mine if m == "tpr"} == {"f", "m"}
        assert 0 <= mine[(result["eec"], "all", "flip_rate")]["value"] <= 1
        assert mine[(data, "all", "leakage")]["value"] is not None, [
            r for r in rows if r["metric"] in ("leakage", "probe_accuracy")
        ]
    board = result["leaderboard"]
    assert len(board) == 3 and {r["model"] for r in board} == models
    assert store.require_manifest(
        StageRef(names.FAIRNESS_EVALUATE, result["run_id"], names.LEADERBOARD)
    ).schema_name == (FAIRNESS_LEADERBOARD.name)
    transfer = next(r for r in board if r["model"] == f"{fair}>{plain}")
    assert transfer["method"] == "transfer:fairberts?width=16>plain"
    for png in ("tradeoff.png", "group_errors.png"):
        assert store.read_bytes(store.path("runs", names.FAIRNESS_EVALUATE, result["run_id"], "plots", png))[:4] == (
            b"\x89PNG"
        )

    # continuous evaluation: a text-classifier model card under models/ gets fairness_evaluate
    from trustflow.flows.continuous import evaluate_model_card

    card_text = (
        f"name: bert-a\nkind: text-classifier\nmodel: run:{plain}\nfairness:\n  eec_pairs: 20\n  bootstrap: 20\n"
    )
    store.write_bytes_atomic(store.path("models", "bert-a.yaml"), card_text.encode())
    card = evaluate_model_card(key="models/bert-a.yaml", etag="e1")
    assert {r["metric"] for r in card["rows"]} >= {"accuracy", "eo_gap", "flip_rate", "leakage"}
    assert all(r["kind"] == "text-classifier" and r["evaluation"] == "fairness" for r in card["rows"])
    (card_acc,) = [r["value"] for r in card["rows"] if r["metric"] == "accuracy"]
    assert card_acc == next(r["accuracy"] for r in board if r["model"] == plain)  # same weights, same test rows

    from trustflow.tasks.report.build import build_leaderboard_report, build_run_report

    html = build_run_report(store, result["run_id"])
    assert "Per-group rates" in html and "tradeoff.png" in html and f"{fair}&gt;{plain}" in html
    assert "Fairness of text classifiers" in build_leaderboard_report(store)
    assert "Fairness fine-tuning" in build_run_report(store, plain)

    # the same two steps again through the CLI (--json is one document): both find their work done
    # (last: the CLI shuts Ray down when it ends)
    from typer.testing import CliRunner

    from trustflow.cli.main import app

    cli = CliRunner()
    out = cli.invoke(app, ["fairness", "train", "--dataset", data, "--methods", "plain", "--encoder", encoder,
                           "--epochs", "2", "--batch-size", "8", "--max-length", "16", "--json"])  # fmt: skip
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["runs"][0]["skipped"] is True
    out = cli.invoke(app, ["fairness", "eval", "--model", plain, "--model", fair, "--transfer", f"{fair}>{plain}",
                           "--eec-pairs", "20", "--bootstrap", "20", "--json"])  # fmt: skip
    assert out.exit_code == 0, out.output
    rerun = json.loads(out.stdout)
    assert rerun["run_id"] == result["run_id"] and rerun["metrics"]["chunks_skipped"] == rerun["metrics"]["chunks"]
    assert len(store.read_table(metrics_ref)) == len(rows)
