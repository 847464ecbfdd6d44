"""ASR phase 2 without services: data-parallel training equals one process with the doubled
batch, jobs and CLI input checked before anything starts, the leaderboard from per-utterance
rows, checkpoint round trip, the WER plot."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
import torch

from trustflow.data.speech.utterances import Utterance
from trustflow.errors import ConfigError
from trustflow.models.speech.ctc import ASR_MODELS, CTCRecogniser
from trustflow.tasks.asr.distributed import ASRTrainJob, checkpoint_bytes, load_checkpoint, make_jobs, model_run
from trustflow.tasks.asr.methods.base import ASR_METHODS, TrainConfig
from trustflow.tasks.asr.train import fit

TINY = "conv-ctc?width=16&blocks=1&kernel=5&dropout=0"
CONFIG = TrainConfig(epochs=1, batch_size=2, lr=1e-2, clip_norm=1.0)
ROWS = 11  # global batches of 4, 4 and 3: the last one splits 2 + 1


def _model() -> CTCRecogniser:
    """The tiny model without BatchNorm: batch statistics are per worker (as DDP without
    SyncBatchNorm), so only a BN-free model can equal the doubled batch exactly."""
    torch.manual_seed(0)
    model = ASR_MODELS.create(TINY)
    for block in model.modules():
        for name, child in list(block.named_children()):
            if isinstance(child, torch.nn.BatchNorm1d):
                setattr(block, name, torch.nn.Identity())
    return model


def _rows(n: int = 12, ragged: bool = True) -> list[Utterance]:
    rng = np.random.default_rng(0)
    phones = ["h", "ə", "l", "o", "|", "w", "ɜ", "d"]
    return [
        Utterance(
            f"u{i}",
            (rng.standard_normal(4000 + 160 * i * ragged) * 0.1).astype(np.float32),
            "hello word",
            [phones[(i + k) % 8] for k in range(3 + i % 3) if phones[(i + k) % 8] != "|"] or ["h"],
            "espeak",
            "v",
            "espeak",
        )  # fmt: skip
        for i in range(n)
    ]


def _worker(rank: int, world: int, init: str, out: str) -> None:
    import torch.distributed as dist

    from trustflow.tasks.asr.distributed import sum_gradients

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    result = fit(ASR_METHODS.create("plain"), _model(), _rows(ROWS, ragged=False), CONFIG, rank, world, sum_gradients)
    torch.save(result.model.state_dict(), f"{out}-{rank}.pt")
    dist.destroy_process_group()


def test_two_workers_with_summed_gradients_equal_one_process_with_the_doubled_batch(tmp_path) -> None:  # noqa: ANN001
    """Two gloo workers (fresh interpreters, not fork: forked children died in the full suite)
    take the one-process steps with the doubled batch, the uneven last batch (2 + 1) and the
    global gradient clip included: the loss is divided by the global batch size and the
    gradients are summed. Exact up to float summation order (atol 1e-5 after three AdamW steps).

    The utterances have equal lengths (ragged phone targets): with ragged lengths a batch is
    padded to its longest utterance and the convolutions' context at an utterance's end reads
    that padding (the STFT's reflect padding and conv zero padding at the tensor's end differ
    from the log-mel of padded silence), so a 2-utterance slice and the 4-utterance batch differ
    slightly for the longest utterance; the input statistics already ignore padding
    (``features(wave, samples)``), ``test_padding_changes_only_the_edge_context`` bounds the rest."""
    init, out = f"file://{tmp_path / 'rdv'}", str(tmp_path / "w")
    code = "import sys; from trustflow.tests.unit.test_asr_pipeline import _worker; " + (
        "_worker(int(sys.argv[1]), 2, sys.argv[2], sys.argv[3])"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(r), init, out],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for r in range(2)
    ]
    for p in procs:
        output, _ = p.communicate(timeout=120)
        assert p.returncode == 0, output[-3000:]
    torch.set_num_threads(1)
    single = fit(
        ASR_METHODS.create("plain"), _model(), _rows(ROWS, ragged=False), CONFIG.model_copy(update={"batch_size": 4})
    )
    ranks = [torch.load(f"{out}-{r}.pt", weights_only=True) for r in range(2)]
    before = _model().state_dict()
    moved = 0
    for k, v in single.model.state_dict().items():
        assert torch.equal(ranks[0][k], ranks[1][k]), k  # the workers never drift apart
        assert torch.allclose(ranks[0][k], v, atol=1e-5), k
        moved += int(not torch.equal(v, before[k]))
    assert moved > 5


def test_padding_changes_only_the_edge_context() -> None:
    """An utterance's log-probs alone vs in a batch padded to a 2x longer one: the normalisation
    ignores the padding, so only frames whose conv context reaches the utterance's end move."""
    torch.manual_seed(0)
    model = ASR_MODELS.create(TINY).eval()
    short = (np.random.default_rng(1).standard_normal(16000) * 0.1).astype(np.float32)
    long = np.zeros(32000, np.float32)
    alone = model(torch.as_tensor(short)[None], torch.tensor([len(short)]))[0]
    wave = torch.zeros(2, len(long))
    wave[0, : len(short)] = torch.as_tensor(short)
    batched = model(wave, torch.tensor([len(short), len(long)]))[0, : alone.shape[0]]
    moved = ((alone - batched).abs().amax(dim=1) > 1e-4).nonzero().flatten().tolist()
    assert moved and moved == list(range(len(alone) - len(moved), len(alone))) and len(moved) <= 4, moved


class _Spy:
    """A method that records the utterances (by length: unique in ``_rows``) of every step."""

    name = "spy"
    reduce_gradients = None

    def __init__(self) -> None:
        self.steps: list[list[int]] = []

    def setup(self, model: object, config: TrainConfig, rank: int = 0) -> None: ...

    def step(self, model: object, batch: Any) -> dict[str, float]:
        self.steps.append(sorted(int(n) for n in batch.samples))
        assert batch.total >= len(batch.targets)
        return {"loss": 1.0}

    def update(self, model: object, loss: object) -> None:
        assert loss is None  # only fit() calls it directly: a worker with an empty slice
        self.steps.append([])


@pytest.mark.parametrize("n", [10, 11, 9, 1])
def test_worker_slices_cover_each_global_batch_once(n: int) -> None:
    """2 workers of batch 2 take the same number of steps (an empty slice still steps, so the
    gradient all-reduce never deadlocks); per step their slices are disjoint and together are
    the one-process batch of 4; every utterance is used once per epoch, the short last batch too."""
    rows = _rows(n)
    runs = {}
    for rank, world, bs in ((0, 2, 2), (1, 2, 2), (-1, 1, 4)):
        spy = _Spy()
        fit(spy, _model(), rows, TrainConfig(epochs=1, batch_size=bs), max(rank, 0), world, lambda g: None)  # type: ignore[arg-type]
        runs[rank] = spy.steps
    assert len(runs[0]) == len(runs[1]) == len(runs[-1]) == -(-n // 4)
    for a, b, whole in zip(runs[0], runs[1], runs[-1], strict=True):
        assert sorted(a + b) == whole and abs(len(a) - len(b)) <= 1
    assert sorted(x for step in runs[-1] for x in step) == sorted(len(r.audio) for r in rows)


def test_more_than_one_worker_needs_a_gradient_reduction() -> None:
    with pytest.raises(ValueError, match="reduce_gradients"):
        fit(_Spy(), _model(), _rows(4), TrainConfig(epochs=1, batch_size=2), 0, 2)  # type: ignore[arg-type]


def test_jobs_are_checked_before_anything_starts() -> None:
    jobs = make_jobs("ds", ["plain", "wapat?eps=0.02", "plain"], {"workers": 2}, {"epochs": 3})
    assert [j.method for j in jobs] == ["plain", "wapat?eps=0.02"] and jobs[0].train.epochs == 3
    with pytest.raises(ConfigError, match="nope"):
        make_jobs("ds", ["nope"], {}, {})
    with pytest.raises(ConfigError, match="workers"):
        make_jobs("ds", ["plain"], {"workers": 0}, {})
    with pytest.raises(ConfigError, match="at least one"):
        make_jobs("ds", [], {}, {})
    with pytest.raises(ConfigError, match="width"):
        make_jobs("ds", ["plain"], {"model": "conv-ctc?width=x"}, {})
    assert model_run("run:asr-plain-1") == "asr-plain-1"
    with pytest.raises(ConfigError, match="asr_train run id"):
        model_run("a/b")


def test_checkpoint_round_trip_keeps_the_weights() -> None:
    torch.manual_seed(3)
    model = ASR_MODELS.create(TINY).eval()
    job = ASRTrainJob(dataset="d", model=TINY)
    loaded, job2 = load_checkpoint(checkpoint_bytes(model.state_dict(), job))
    assert job2 == job and not loaded.training
    wave = torch.randn(1, 4000)
    assert torch.equal(loaded(wave), model(wave))


def _result(model: str, method: str, domain: str, shift: str, errors: list[int], words: int = 4) -> list[dict]:
    return [
        {
            "row_key": f"{model}|{domain}|u{i}",
            "model": model,
            "method": method,
            "dataset": "d",
            "domain": domain,
            "shift": shift,
            "utt_id": f"u{i}",
            "reference": "a b c d",
            "hypothesis": "a b",
            "word_errors": e,
            "words": words,
            "phone_errors": e,
            "phones": 2 * words,
            "audio_s": 2.0,
            "decode_s": 0.1,
        }  # fmt: skip
        for i, e in enumerate(errors)
    ]


def test_leaderboard_is_the_corpus_wer_per_model_and_domain_with_the_ood_mean() -> None:
    from trustflow.tasks.asr.stages import OOD_MEAN, leaderboard, markdown_table, pivot

    rows = (
        _result("m1", "plain", "espeak", "clean", [0, 1, 2, 1])
        + _result("m1", "plain", "espeak+telephone", "telephone", [4, 4, 2, 2])
        + [{**r, "dataset": "r"} for r in _result("m1", "plain", "real", "clean", [1, 1])]
        + _result("m2", "wapat", "espeak", "clean", [0, 0, 0, 0])
    )
    ood = {"d|clean": False, "d|telephone": True, "r|clean": True}
    board = leaderboard(rows, ood, samples=200)
    cells = {(b["model"], b["domain"]): b for b in board}
    clean = cells[("m1", "espeak")]
    assert clean["wer"] == pytest.approx(4 / 16) and clean["per"] == pytest.approx(4 / 32) and not clean["ood"]
    assert clean["wer_lo"] <= clean["wer"] <= clean["wer_hi"] and clean["rtf"] == pytest.approx(0.05)
    assert cells[("m1", "espeak+telephone")]["wer"] == pytest.approx(0.75) and cells[("m1", "espeak+telephone")]["ood"]
    # the OOD mean is unweighted over out-of-domain domains (telephone 0.75 and real 0.25)
    assert cells[("m1", OOD_MEAN)]["wer"] == pytest.approx(0.5)
    assert ("m2", OOD_MEAN) not in cells  # no out-of-domain rows, no mean
    domains, table = pivot(board)
    assert domains == ["espeak", "espeak+telephone", "real", OOD_MEAN]
    assert table[1] == {"model": "m2", "method": "wapat", "espeak": 0.0}
    assert "| plain | m1 | 25.0 | 75.0 | 25.0 | 50.0 |" in markdown_table(board)


def test_report_examples_are_the_same_utterances_for_every_model() -> None:
    from trustflow.tasks.asr.report import pick_examples

    rows = [
        {**r, "utt_id": f"u{i % 3}", "model": m, "method": m}
        for m in ("a", "b")
        for d in ("espeak", "espeak+reverb")
        for i, r in enumerate(_result(m, m, d, "clean", [0, 1, 2]))
    ]
    picked = pick_examples(rows, per_domain=2)
    assert [(r["domain"], r["utt_id"], r["model"]) for r in picked] == [
        (d, u, m) for d in ("espeak", "espeak+reverb") for u in ("u0", "u1") for m in ("a", "b")
    ]


def test_domains_and_shift_seeds_are_stable() -> None:
    from trustflow.tasks.asr.stages import domain_of, shift_seed

    assert domain_of("espeak", "clean") == "espeak" and domain_of("espeak", "reverb") == "espeak+reverb"
    assert shift_seed("u1", "reverb", 0) == shift_seed("u1", "reverb", 0) != shift_seed("u2", "reverb", 0)


def test_wer_plot_is_a_png() -> None:
    from trustflow.tasks.asr import plots
    from trustflow.tasks.asr.stages import leaderboard

    rows = _result("m1", "plain", "espeak", "clean", [0, 1]) + _result("m1", "plain", "real", "clean", [2, 2])
    assert plots.wer_by_domain(leaderboard(rows, {"d|clean": False}, samples=20))[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--dataset", "d", "--methods", "nope"], "nope"),
        (["train", "--dataset", "d", "--model", "conv-ctc?width=x"], "width"),
        (["train", "--dataset", "d", "--lr", "0"], "lr"),
        (["eval"], "--model: give at least one"),
        (["eval", "--model", "m"], "--dataset: give at least one"),
        (["eval", "--model", "m", "--dataset", "d", "--shift", "bogus"], "bogus"),
    ],
)
def test_cli_bad_input_is_one_error_line(args: list[str], message: str) -> None:
    from typer.testing import CliRunner

    from trustflow.cli.main import app

    out = CliRunner().invoke(app, ["asr", *args])
    assert out.exit_code != 0
    lines = [ln for ln in out.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], out.output


def test_speech_recognizer_card_names_an_asr_run_and_plain_datasets_and_shifts() -> None:
    from trustflow.data.model_card import parse_model_card
    from trustflow.errors import InputError

    text = "name: ctc-a\nkind: speech-recognizer\nmodel: run:asr-wapat-abc\nasr:\n  datasets: [espeak-1]\n"
    card = parse_model_card(text, "m.yaml", [])
    assert card.asr is not None and card.asr.shifts == ["noise?snr_db=10", "reverb", "telephone"]
    head = "name: b\nkind: speech-recognizer\n"
    bad = {
        head + "model: run:x\n": "needs 'asr'",
        head + "model: run:x\nasr: {}\n": "'datasets' or 'clean_only'",
        head + "model: ckpt:/etc/x.pt\nasr:\n  datasets: [d]\n": "run:<asr_train run id>",
        head + "model: run:x\nasr:\n  datasets: ['../x']\n": "asr.datasets",
        head + "model: run:x\nasr:\n  clean_only: [d]\n  shifts: ['noise?path=/etc/x']\n": "asr.shifts",
        head + "model: run:x\nasr:\n  datasets: [d]\nrobustness: {}\n": "'asr' options only",
        "name: b\nkind: classifier\nmodel: small_cnn\nasr:\n  datasets: [d]\n": "speech-recognizer only",
    }
    for text, message in bad.items():
        with pytest.raises(InputError, match=message):
            parse_model_card(text, "m.yaml", [])


def test_speech_card_rows_are_the_wer_per_domain() -> None:
    from trustflow.tasks.continuous.stages import asr_rows

    board = [{"domain": "espeak", "wer": 0.2}, {"domain": "ood-mean", "wer": 0.6}]
    rows = asr_rows({"card_key": "models/a.yaml"}, {"run_id": "r", "leaderboard": board})
    assert [(r["evaluation"], r["metric"], r["value"]) for r in rows] == [
        ("speech", "wer espeak", 0.2),
        ("speech", "wer ood-mean", 0.6),
    ]
    assert all(r["card_key"] == "models/a.yaml" and r["run_id"] == "r" for r in rows)
