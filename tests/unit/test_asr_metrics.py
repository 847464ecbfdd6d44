"""WER and PER on hand fixtures, with intervals, per domain."""

from __future__ import annotations

import pytest

from trustflow.tasks.asr.metrics import by_domain, error_rate, per, wer


def test_wer_counts_substitutions_insertions_deletions_over_all_words() -> None:
    refs = ["the cat sat", "a dog"]
    hyps = ["the bat sat down", "dog"]
    r = wer(refs, hyps, samples=0)
    # utt1: 1 sub + 1 ins; utt2: 1 del -> 3 / 5 words (corpus-level, not a mean of 2/3 and 1/2)
    assert (r.errors, r.tokens, r.n) == (3, 5, 2)
    assert r.rate == pytest.approx(0.6)


def test_wer_perfect_and_empty_hypothesis() -> None:
    assert wer(["a b c"], ["a b c"], samples=0).rate == 0.0
    assert wer(["a b c"], [""], samples=0).rate == 1.0


def test_per_ignores_word_boundaries() -> None:
    refs = [["k", "æ", "t", "|", "s", "æ", "t"]]
    hyps = [["k", "æ", "|", "s", "æ", "t", "s"]]  # one deletion, one insertion over 6 phones
    r = per(refs, hyps, samples=0)
    assert (r.errors, r.tokens) == (2, 6)


def test_bootstrap_interval_brackets_the_rate_and_is_seeded() -> None:
    refs = ["a b c d"] * 10 + ["e f"] * 10
    hyps = ["a b c x"] * 10 + ["e f"] * 10
    a, b = wer(refs, hyps, samples=300, seed=1), wer(refs, hyps, samples=300, seed=1)
    assert a == b
    assert a.low <= a.rate <= a.high and a.low < a.high
    assert a.low >= 0.0 and a.high <= 0.25 + 1e-12


def test_by_domain_splits_rows() -> None:
    out = by_domain(["clean", "noise", "clean"], ["a b", "a b", "c"], ["a b", "a", "d"], samples=0)
    assert list(out) == ["clean", "noise"]
    assert out["clean"].rate == pytest.approx(1 / 3) and out["noise"].rate == pytest.approx(0.5)


def test_mismatched_lengths_are_an_error() -> None:
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        error_rate([["a"], ["b"]], [["a"]])
