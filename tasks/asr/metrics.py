"""Word and phone error rates, per domain, with bootstrap intervals.

Error rate = total edit operations / total reference tokens over a set (corpus-level, as ESB
and jiwer report it), not a mean of per-utterance rates, so long utterances weigh more.
Interval: percentile bootstrap over utterances (resample utterances, recompute the ratio),
``samples`` draws from ``seed``. The edit distance is the project's own
(models/speech/ctc.edit_distance), so no extra dependency is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from trustflow.models.speech.ctc import edit_distance


@dataclass(frozen=True)
class ErrorRate:
    rate: float
    low: float
    high: float
    errors: int
    tokens: int
    n: int


def counts(refs: Sequence[Sequence[str]], hyps: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
    """Per utterance: (edit operations, reference length)."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    errors = np.array([edit_distance(r, h) for r, h in zip(refs, hyps, strict=True)], dtype=np.int64)
    return errors, np.array([len(r) for r in refs], dtype=np.int64)


def rate_from_counts(errors: np.ndarray, tokens: np.ndarray, samples: int = 1000, seed: int = 0) -> ErrorRate:
    """Corpus error rate from per-utterance (edit operations, reference length), with a 95 %
    percentile bootstrap over utterances (what the stored per-utterance rows give back)."""
    errors, tokens = np.asarray(errors, dtype=np.int64), np.asarray(tokens, dtype=np.int64)
    total = int(tokens.sum())
    rate = float(errors.sum() / total) if total else float("nan")
    if len(errors) < 2 or samples < 1 or not total:
        return ErrorRate(rate, rate, rate, int(errors.sum()), total, len(errors))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(errors), size=(samples, len(errors)))
    e, t = errors[idx].sum(axis=1), tokens[idx].sum(axis=1)
    boot = e[t > 0] / t[t > 0]
    low, high = np.percentile(boot, [2.5, 97.5])
    return ErrorRate(rate, float(low), float(high), int(errors.sum()), total, len(errors))


def error_rate(
    refs: Sequence[Sequence[str]], hyps: Sequence[Sequence[str]], samples: int = 1000, seed: int = 0
) -> ErrorRate:
    """Corpus error rate of token sequences, with a 95% bootstrap interval."""
    errors, tokens = counts(refs, hyps)
    return rate_from_counts(errors, tokens, samples, seed)


def wer(refs: Sequence[str], hyps: Sequence[str], samples: int = 1000, seed: int = 0) -> ErrorRate:
    """Word error rate of normalised transcripts (split on whitespace)."""
    return error_rate([r.split() for r in refs], [h.split() for h in hyps], samples, seed)


def per(refs: Sequence[Sequence[str]], hyps: Sequence[Sequence[str]], samples: int = 1000, seed: int = 0) -> ErrorRate:
    """Phone error rate; word-boundary tokens ``|`` are not phones and are left out."""
    strip = [[p for p in seq if p != "|"] for seq in refs], [[p for p in seq if p != "|"] for seq in hyps]
    return error_rate(strip[0], strip[1], samples, seed)


def by_domain(
    domains: Sequence[str], refs: Sequence[str], hyps: Sequence[str], samples: int = 1000, seed: int = 0
) -> dict[str, ErrorRate]:
    """WER per domain (sorted by name)."""
    out: dict[str, ErrorRate] = {}
    for d in sorted(set(domains)):
        idx = [i for i, x in enumerate(domains) if x == d]
        out[d] = wer([refs[i] for i in idx], [hyps[i] for i in idx], samples, seed)
    return out
