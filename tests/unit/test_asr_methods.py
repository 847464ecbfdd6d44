"""ASR training methods on a tiny random model: every method updates the weights; the
phoneme-space adversary stays in its eps-ball and raises the loss; waveform PGD likewise."""

from __future__ import annotations

import pytest
import torch

from trustflow.models.speech.ctc import ASR_MODELS, CTCRecogniser, ctc_loss
from trustflow.tasks.asr.methods.base import ASR_METHODS, Batch, TrainConfig, batch_loss
from trustflow.tasks.asr.methods.pgd import wave_pgd
from trustflow.tasks.asr.methods.wapat import phoneme_adversary


def _model(seed: int = 0) -> CTCRecogniser:
    torch.manual_seed(seed)
    return ASR_MODELS.create("conv-ctc?width=16&blocks=1&kernel=5&dropout=0")


def _batch(seed: int = 0) -> Batch:
    gen = torch.Generator().manual_seed(seed)
    wave = torch.randn(2, 6400, generator=gen) * 0.1
    return Batch(wave, torch.tensor([6400, 5000]), [[3, 4, 1, 5], [6, 7]])


@pytest.mark.parametrize("name", ASR_METHODS.names())
def test_every_method_takes_one_step_that_changes_the_weights(name: str) -> None:
    model = _model()
    before = [p.detach().clone() for p in model.parameters()]
    method = ASR_METHODS.create(ASR_METHODS.example(name))
    method.setup(model, TrainConfig(lr=1e-2))
    model.train()
    losses = method.step(model, _batch())
    assert losses and all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_phoneme_adversary_stays_in_eps_ball_and_raises_the_loss() -> None:
    model = _model().eval()
    batch = _batch()
    feats = model.features(batch.wave).detach()
    lengths = model.output_lengths(batch.samples)
    clean = ctc_loss(model.head(feats), lengths, batch.targets).item()
    for eps in (0.05, 0.2):
        delta = phoneme_adversary(model, feats, lengths, batch.targets, eps=eps, lr=eps / 2, steps=4)
        assert float(delta.abs().max()) <= eps + 1e-7
        assert float(delta.abs().max()) == pytest.approx(eps)  # it uses the ball
        assert ctc_loss(model.head(feats + delta), lengths, batch.targets).item() > clean


def test_guided_adversary_with_augmented_gradient_stays_in_ball() -> None:
    model = _model().eval()
    batch = _batch()
    feats = model.features(batch.wave).detach()
    lengths = model.output_lengths(batch.samples)
    guide = model.head(model.features(batch.wave * 0.5)).detach()
    aug_grad = torch.randn(feats.shape, generator=torch.Generator().manual_seed(1))
    delta = phoneme_adversary(model, feats, lengths, batch.targets, 0.01, 0.01, 1, guide, 1.0, aug_grad)
    assert float(delta.abs().max()) <= 0.01 + 1e-7


def test_wave_pgd_stays_in_eps_ball_and_raises_the_loss() -> None:
    model = _model().eval()
    batch = _batch()
    adv = wave_pgd(model, batch, eps=0.01, alpha=0.005, steps=3, gen=torch.Generator().manual_seed(0))
    assert float((adv - batch.wave).abs().max()) <= 0.01 + 1e-7
    clean = batch_loss(model, batch.wave, batch.samples, batch.targets).item()
    assert batch_loss(model, adv, batch.samples, batch.targets).item() > clean


def test_fit_keeps_epoch_history_and_transcribe_gives_phones_and_words() -> None:
    import numpy as np

    from trustflow.data.speech.utterances import Utterance
    from trustflow.models.speech.ctc import LexiconDecoder
    from trustflow.tasks.asr.train import fit, transcribe

    rng = np.random.default_rng(0)
    rows = [
        Utterance(
            f"u{i}",
            (rng.standard_normal(3200 + 400 * i) * 0.1).astype(np.float32),
            "a cat",
            ["ə", "|", "k", "æ", "t"],
            "d",
            "s",
            "x",
        )
        for i in range(3)
    ]
    model = _model()
    result = fit(ASR_METHODS.create("plain"), model, rows, TrainConfig(epochs=2, batch_size=2))
    assert [h["epoch"] for h in result.history] == [0.0, 1.0] and result.utterances == 6
    assert not model.training and model.spec_augment is None
    out = transcribe(model, [r.audio for r in rows], LexiconDecoder({"a": ("ə",), "cat": ("k", "æ", "t")}))
    assert len(out) == 3
    for phones, words in out:
        assert all(p != "<b>" for p in phones)
        assert set(words.split()) <= {"a", "cat"}
