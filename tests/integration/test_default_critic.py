"""The default critic on the held-out labelled set: the figure the S-Eval pipeline rests on.

Loads the real packaged Qwen2.5-1.5B (converted once into the model cache) and judges the
80 held-out pairs, which no critic trains on. Target from the issue: balanced accuracy ≥ 0.80.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from trustflow.models.critics import make_critic
from trustflow.tasks.seval.critic_validation import read_labels, validate_critic

HOLDOUT = Path(__file__).resolve().parents[2] / "data" / "seval" / "labels" / "critic_holdout.jsonl"

pytestmark = pytest.mark.integration


@pytest.mark.timeout(1500)  # a fresh machine first joins and converts the 1.1 GB GGUF (~2 min quiet)
def test_default_critic_reaches_target_on_held_out_pairs() -> None:
    critic = make_critic("default")
    assert HOLDOUT.resolve() not in {p.resolve() for p in critic.labels}  # never trained on
    labelled = read_labels(HOLDOUT)
    scores = validate_critic(critic, labelled, batch_size=16)
    assert scores.judge_errors == 0
    assert scores.balanced_accuracy >= 0.80, scores
    for lang in ("en", "zh"):  # both languages, not one carrying the other
        per_lang = validate_critic(critic, [pair for pair in labelled if pair[0].lang == lang], batch_size=16)
        assert per_lang.balanced_accuracy >= 0.75, (lang, per_lang)
