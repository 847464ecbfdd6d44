"""Fairness methods on a tiny random BERT: the generator's reach, min–max directions, planted bias."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertModel

from trustflow.data.fairness.terms import swap_terms
from trustflow.models.text.encoder import TextClassifier
from trustflow.tasks.fairness.data import TextData
from trustflow.tasks.fairness.methods.base import FAIRNESS_METHODS, TrainConfig
from trustflow.tasks.fairness.metrics import leakage
from trustflow.tasks.fairness.model import FairModel, Generator, attach
from trustflow.tasks.fairness.train import fit, make_batch, predict

WORDS = [
    "good",
    "great",
    "fine",
    "bad",
    "awful",
    "poor",
    "she",
    "her",
    "woman",
    "he",
    "his",
    "man",
    "the",
    "a",
    "of",
    "day",
    "was",
    "it",
    "and",
    "to",
]
VOCAB = {w: i + 1 for i, w in enumerate(WORDS)}


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)  # tiny models: threads only add contention on shared cores


def tokenize(texts: list[str]) -> dict[str, torch.Tensor]:
    ids = [[VOCAB[w] for w in t.lower().split()] for t in texts]
    n = max(map(len, ids))
    return {
        "input_ids": torch.tensor([i + [0] * (n - len(i)) for i in ids]),
        "attention_mask": torch.tensor([[1] * len(i) + [0] * (n - len(i)) for i in ids]),
    }


def planted(n: int, seed: int, bias: float = 0.9) -> TextData:
    """Sentiment with a noisy label word, and a gender word that predicts the label ``bias`` of the time."""
    rng = np.random.default_rng(seed)
    texts, y, z = [], [], []
    for _ in range(n):
        g = int(rng.random() < 0.5)
        label = int(rng.random() < (bias if g else 1 - bias))
        said = label if rng.random() < 0.8 else 1 - label
        words = [*rng.choice(WORDS[12:], 4), (WORDS[:3] if said else WORDS[3:6])[rng.integers(3)]]
        words.append((WORDS[9:12] if g else WORDS[6:9])[rng.integers(3)])
        rng.shuffle(words)
        texts.append(" ".join(words))
        y.append(label)
        z.append(g)
    return TextData(texts, np.array(y), np.array(z), ["neg", "pos"], ["female", "male"])


def tiny(seed: int = 0) -> TextClassifier:
    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=32,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=16,
    )
    return TextClassifier(BertModel(cfg, add_pooling_layer=False), 2)


CONFIG = TrainConfig(epochs=4, batch_size=32, lr=1e-3, head_lr=3e-3)


def test_generator_changes_only_the_pooled_vector_within_its_bound() -> None:
    clf = tiny()
    clf.eval()
    gen = Generator(clf.hidden, width=16, eps=0.3)
    torch.nn.init.normal_(gen.out.weight, std=1.0)  # a large raw output: the bound must bite
    batch = tokenize(["she was good", "he was bad and the day"])
    states0, pooled0 = clf.encode(**batch)
    model = FairModel(clf, gen).eval()
    states1, pooled1, rep = model.represent_parts(**batch)
    assert torch.equal(states0, states1) and torch.equal(pooled0, pooled1)  # encoder untouched
    delta = rep - pooled1
    assert (delta.norm(dim=-1) > 0).all()
    assert (delta.norm(dim=-1) <= 0.3 * pooled1.norm(dim=-1) + 1e-5).all()
    assert torch.allclose(model(**batch), clf.classify(rep))  # the head reads h_c + δ and nothing else


def test_min_max_directions_discriminator_improves_then_generator_worsens_it() -> None:
    data = planted(256, 0)
    method = FAIRNESS_METHODS.create("fairberts?eps=1")
    clf = tiny()
    fit(FAIRNESS_METHODS.create("plain"), clf, data, tokenize, CONFIG.model_copy(update={"epochs": 2}))
    model = method.setup(clf, data, CONFIG)
    model.eval()  # no dropout: the same batch gives the same losses
    batch = make_batch(data, np.arange(128), tokenize)

    def d_loss() -> float:
        with torch.no_grad():
            return float(
                torch.nn.functional.cross_entropy(
                    method.discriminator(model.represent(batch.input_ids, batch.attention_mask)), batch.z
                )
            )

    before = d_loss()
    method.discriminator_step(model, batch)
    after_d = d_loss()
    assert after_d < before  # max side: the discriminator gets better at the attribute
    method.main_step(model, batch)
    assert d_loss() > after_d  # min side: the generator makes the discriminator worse


def test_gradient_reversal_flips_the_sign_only() -> None:
    from trustflow.tasks.fairness.methods.adversarial import reverse_gradient

    x = torch.ones(3, requires_grad=True)
    (reverse_gradient(x, 0.5) * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert x.grad is not None and torch.allclose(x.grad, torch.tensor([-0.5, -1.0, -1.5]))


def test_cda_adds_swapped_twins_with_the_same_label() -> None:
    data = TextData(["she was good", "the day was bad"], np.array([1, 0]), np.array([0, 1]), ["n", "p"], ["f", "m"])
    out = FAIRNESS_METHODS.create("cda?families=gender").prepare(data)
    assert out.texts == ["she was good", "the day was bad", "he was good"] and list(out.y) == [1, 0, 1]
    assert swap_terms("she was good") == "he was good"


def test_inlp_projection_removes_the_linear_attribute_direction() -> None:
    from trustflow.tasks.fairness.methods.inlp import nullspace_projection

    rng = np.random.default_rng(0)
    z = rng.integers(0, 2, 400)
    x = rng.normal(size=(400, 6))
    x[:, 2] += 4 * z
    p = nullspace_projection(x, z, iterations=3)
    assert leakage(x, z)["leakage"] > 0.4 and leakage(x @ p, z)["leakage"] < 0.1
    assert np.allclose(p, p.T) and np.allclose(p @ p, p, atol=1e-8)


def test_every_method_trains_and_predicts_and_a_generator_transfers() -> None:
    data, test = planted(96, 0), planted(64, 1)
    short = CONFIG.model_copy(update={"epochs": 1})
    fitted = {}
    for spec in ("plain", "fairberts", "adversarial", "cda", "inlp?iterations=2&head_steps=20"):
        result = fit(FAIRNESS_METHODS.create(spec), tiny(), data, tokenize, short)
        logits, reps = predict(result.model, test, tokenize)
        assert logits.shape == (64, 2) and reps.shape == (64, 32) and np.isfinite(logits).all()
        assert result.samples >= 96 and result.history
        fitted[spec.split("?")[0]] = result.model
    assert fitted["fairberts"].generator is not None
    moved = attach(fitted["fairberts"].generator, fitted["plain"])
    assert moved.classifier is fitted["plain"].classifier and predict(moved, test, tokenize)[0].shape == (64, 2)


def test_planted_bias_set_makes_plain_fine_tuning_leak_the_attribute() -> None:
    """The planted set does what it is for: plain fine-tuning leaks the attribute (a fresh
    probe reads it well above the majority rate). Removing it is the open part of issue 17:
    neither fairBERTs nor INLP halves it on this set yet (benchmarks/fairness.py measures
    every method; docs/pipelines/fairness.md)."""
    data, test = planted(400, 0), planted(200, 1)
    config = CONFIG.model_copy(update={"epochs": 4})
    plain = fit(FAIRNESS_METHODS.create("plain"), tiny(), data, tokenize, config)
    assert leakage(predict(plain.model, test, tokenize)[1], test.z)["leakage"] > 0.3
