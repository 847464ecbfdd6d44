"""CTC recogniser pieces on hand-made cases: loss, greedy decode, lexicon decoder, front end."""

from __future__ import annotations

import math

import pytest
import torch

from trustflow.data.speech.phones import PHONE_INDEX, PHONES, encode, normalise_text, phones_for, split_ipa
from trustflow.models.speech.ctc import (
    ASR_MODELS,
    LexiconDecoder,
    LogMel,
    ctc_loss,
    edit_distance,
    greedy_decode,
    mel_filterbank,
)


def _log_probs(rows: list[list[float]]) -> torch.Tensor:
    return torch.log(torch.tensor([rows], dtype=torch.float64))


def test_ctc_loss_sums_the_alignments_of_a_hand_case() -> None:
    # vocab {blank, a}; T=2, target "a": paths aa, a-, -a
    p = [[0.3, 0.7], [0.6, 0.4]]
    expected = -math.log(0.7 * 0.4 + 0.7 * 0.6 + 0.3 * 0.4)
    got = ctc_loss(_log_probs(p), torch.tensor([2]), [[1]])
    assert got.item() == pytest.approx(expected, rel=1e-9)


def test_ctc_loss_of_repeated_label_needs_a_blank_between() -> None:
    # target "a a" in 3 frames has exactly one path: a - a
    p = [[0.1, 0.9], [0.8, 0.2], [0.25, 0.75]]
    got = ctc_loss(_log_probs(p), torch.tensor([3]), [[1, 1]])
    assert got.item() == pytest.approx(-math.log(0.9 * 0.8 * 0.75) / 2, rel=1e-9)  # mean over target length


def test_greedy_decode_merges_repeats_and_drops_blanks_within_length() -> None:
    frames = [0, 3, 3, 0, 3, 5, 5, 0, 7]
    lp = torch.full((1, len(frames), 9), -10.0)
    lp[0, torch.arange(len(frames)), torch.tensor(frames)] = 0.0
    assert greedy_decode(lp) == [[3, 3, 5, 7]]
    assert greedy_decode(lp, torch.tensor([6])) == [[3, 3, 5]]


def test_lexicon_decoder_picks_the_closest_word_per_chunk() -> None:
    lexicon = {"cat": ("k", "æ", "t"), "cap": ("k", "æ", "p"), "dog": ("d", "ɑ", "ɡ")}
    dec = LexiconDecoder(lexicon)
    ids = encode(["k", "æ", "t", "|", "d", "ɔ", "ɡ", "|", "|", "k", "æ", "p"])
    assert dec(ids) == "cat dog cap"
    assert dec([]) == ""


def test_edit_distance_hand_cases() -> None:
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance([], ["a", "b"]) == 2
    assert edit_distance(["a", "b"], ["a", "b"]) == 0


def test_phone_helpers() -> None:
    assert split_ipa("hˈɛlˌoʊ") == ["h", "ɛ", "l", "o", "ʊ"]
    assert normalise_text("Hello, World! It's 5.") == "hello world it's 5"
    assert phones_for("a cat", {"a": ("ə",), "cat": ("k", "æ", "t")}) == ["ə", "|", "k", "æ", "t"]
    assert PHONES[0] == "<b>" and PHONE_INDEX["|"] == 1


def test_mel_filterbank_is_triangular_and_covers_the_band() -> None:
    fb = mel_filterbank(40, 400)
    assert fb.shape == (201, 40)
    assert float(fb.min()) >= 0 and float(fb.max()) <= 1.0 + 1e-6
    assert bool((fb.sum(dim=0) > 0).all())  # no empty filter
    peaks = fb.argmax(dim=0)
    assert bool((peaks[1:] >= peaks[:-1]).all())  # centres ascend


def test_log_mel_sees_the_tone_in_the_right_band() -> None:
    t = torch.arange(8000) / 16000
    low, high = torch.sin(2 * math.pi * 300 * t)[None], torch.sin(2 * math.pi * 4000 * t)[None]
    lm = LogMel(n_mels=40)
    assert int(lm(low).mean(1).argmax()) < int(lm(high).mean(1).argmax())


def test_conv_ctc_output_lengths_match_its_frames() -> None:
    model = ASR_MODELS.create("conv-ctc?width=16&blocks=1").eval()
    for n in (4000, 4321, 8000):
        lp = model(torch.randn(1, n) * 0.1)
        assert lp.shape[1] == int(model.output_lengths(torch.tensor([n]))[0])
        assert lp.shape[2] == len(PHONES)
        assert torch.allclose(lp.exp().sum(-1), torch.ones(lp.shape[:2]), atol=1e-5)
