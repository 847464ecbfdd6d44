"""ASR phase 2 without services: data-parallel training equals one process with the doubled
batch, jobs and CLI input checked before anything starts, the leaderboard from per-utterance
rows, checkpoint round trip, the WER plot."""

from __future__ import annotations

import os
import subprocess
import sys

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
CONFIG = TrainConfig(epochs=1, batch_size=2, lr=1e-2, max_steps=3, clip_norm=1e6)


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


def _rows(n: int = 12) -> list[Utterance]:
    rng = np.random.default_rng(0)
    phones = ["h", "ə", "l", "o", "|", "w", "ɜ", "d"]
    return [
        Utterance(f"u{i}", (rng.standard_normal(4000 + 160 * i) * 0.1).astype(np.float32), "hello word",
                  [phones[(i + k) % 8] for k in range(3 + i % 3) if phones[(i + k) % 8] != "|"] or ["h"],
                  "espeak", "v", "espeak")  # fmt: skip
        for i in range(n)
    ]


def _worker(rank: int, world: int, init: str, out: str) -> None:
    import torch.distributed as dist

    from trustflow.tasks.fairness.distributed import synchronise_gradients

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    result = fit(
        ASR_METHODS.create("plain"), _model(), _rows(), CONFIG, rank, world, lambda m: synchronise_gradients(m, world)
    )
    torch.save(result.model.state_dict(), f"{out}-{rank}.pt")
    dist.destroy_process_group()


def test_two_workers_with_averaged_gradients_equal_one_process_with_the_doubled_batch(tmp_path) -> None:  # noqa: ANN001
    """Fresh interpreters (not fork: forked children died in the full suite)."""
    init, out = f"file://{tmp_path / 'rdv'}", str(tmp_path / "w")
    code = "import sys; from trustflow.tests.unit.test_asr_pipeline import _worker; " + (
        "_worker(int(sys.argv[1]), 2, sys.argv[2], sys.argv[3])"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(r), init, out], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)  # fmt: skip
        for r in range(2)
    ]
    for p in procs:
        output, _ = p.communicate(timeout=120)
        assert p.returncode == 0, output[-3000:]
    torch.set_num_threads(1)
    single = fit(ASR_METHODS.create("plain"), _model(), _rows(), CONFIG.model_copy(update={"batch_size": 4}))
    ranks = [torch.load(f"{out}-{r}.pt", weights_only=True) for r in range(2)]
    before = _model().state_dict()
    moved = 0
    for k, v in single.model.state_dict().items():
        assert torch.equal(ranks[0][k], ranks[1][k]), k  # the workers never drift apart
        assert torch.allclose(ranks[0][k], v, atol=1e-5), k
        moved += int(not torch.equal(v, before[k]))
    assert moved > 5


def test_worker_slices_cover_each_global_batch_once() -> None:
    """With 2 workers of batch 2, every step's two slices are disjoint and together they are
    the single process's batch of 4 (same seeded permutation)."""
    seen: dict[int, list[list[str]]] = {0: [], 1: [], -1: []}

    class Spy:
        name = "spy"

        def setup(self, model: object, config: TrainConfig) -> None: ...

        def step(self, model: object, batch: object, _who: int = 0) -> dict[str, float]:
            return {}

    rows = _rows(10)
    for rank, world, bs in ((0, 2, 2), (1, 2, 2), (-1, 1, 4)):
        spy = Spy()
        ids: list[list[str]] = seen[rank]

        def step(model: object, batch: object, _ids: list[list[str]] = ids) -> dict[str, float]:
            _ids.append([f"{len(t)}" for t in batch.targets])  # type: ignore[attr-defined]
            return {"loss": 0.0}

        spy.step = step  # type: ignore[method-assign]
        fit(spy, _model(), rows, TrainConfig(epochs=1, batch_size=bs), max(rank, 0), world)  # type: ignore[arg-type]
    assert len(seen[0]) == len(seen[1]) == len(seen[-1]) == 3  # 10 rows: batches of 4, 4, 2 (1 + 1)
    for a, b, whole in zip(seen[0], seen[1], seen[-1], strict=True):
        assert sorted(a + b) == sorted(whole)


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
        {"row_key": f"{model}|{domain}|u{i}", "model": model, "method": method, "dataset": "d", "domain": domain,
         "shift": shift, "utt_id": f"u{i}", "reference": "a b c d", "hypothesis": "a b", "word_errors": e,
         "words": words, "phone_errors": e, "phones": 2 * words, "audio_s": 2.0, "decode_s": 0.1}  # fmt: skip
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
