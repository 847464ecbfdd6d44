"""Validate a critic against labelled (prompt, response, unsafe) data.

Labels are read by :func:`trustflow.models.critics.read_labels` (CSV, JSONL or Parquet, see
``data/seval/labels.py``). Judge errors are reported as a rate and excluded from the
confusion matrix — never silently counted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from trustflow.data.seval.labels import LabelColumns
from trustflow.models.critics.base import Critic, JudgeItem, Judgement, read_labels

__all__ = ["CriticScores", "LabelColumns", "read_labels", "score_judgements", "validate_critic"]


@dataclass(frozen=True)
class CriticScores:
    n: int
    judge_errors: int
    judge_error_rate: float
    balanced_accuracy: float
    precision: float
    recall: float
    tp: int
    fp: int
    tn: int
    fn: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def score_judgements(judgements: list[Judgement], labels: list[bool]) -> CriticScores:
    tp = fp = tn = fn = errors = 0
    for j, y in zip(judgements, labels, strict=True):
        if j.judge_error is not None or j.unsafe is None:
            errors += 1
        elif j.unsafe and y:
            tp += 1
        elif j.unsafe and not y:
            fp += 1
        elif not j.unsafe and y:
            fn += 1
        else:
            tn += 1
    tpr = tp / (tp + fn) if tp + fn else float("nan")
    tnr = tn / (tn + fp) if tn + fp else float("nan")
    n = len(labels)
    return CriticScores(
        n=n,
        judge_errors=errors,
        judge_error_rate=errors / n if n else float("nan"),
        balanced_accuracy=(tpr + tnr) / 2,
        precision=tp / (tp + fp) if tp + fp else float("nan"),
        recall=tpr,
        tp=tp,
        fp=fp,
        tn=tn,
        fn=fn,
    )


def validate_critic(critic: Critic, labelled: list[tuple[JudgeItem, bool]], batch_size: int = 8) -> CriticScores:
    items = [item for item, _ in labelled]
    judgements: list[Judgement] = []
    for start in range(0, len(items), batch_size):
        judgements.extend(critic.judge(items[start : start + batch_size]))
    return score_judgements(judgements, [y for _, y in labelled])
