"""Validate a critic against labelled (prompt, response, unsafe) data.

Labels come from CSV, JSONL or Parquet; column names are mappable, and a numeric label
counts as unsafe when > 0 (so 0/1 labels and human harm scores both work). Judge errors
are reported as a rate and excluded from the confusion matrix — never silently counted.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from trustflow.errors import InputError
from trustflow.models.critics.base import Critic, JudgeItem, Judgement


@dataclass(frozen=True)
class LabelColumns:
    prompt: str = "prompt"
    response: str = "response"
    label: str = "unsafe"
    lang: str = "lang"


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


def read_labels(path: Path, cols: LabelColumns = LabelColumns()) -> list[tuple[JudgeItem, bool]]:
    """Labelled items from ``path``; missing columns and bad labels name the file."""
    if not path.is_file():
        raise InputError(f"{path}: labels file not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            table = pq.read_table(path)
        elif suffix == ".csv":
            table = pacsv.read_csv(path)
        elif suffix in (".jsonl", ".json"):
            lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
            records = []
            for i, line in enumerate(lines, start=1):
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise InputError(f"{path}: line {i}: not valid JSON ({exc.msg})") from None
            table = pa.Table.from_pylist(records)
        else:
            raise InputError(f"{path}: unsupported labels format {suffix!r} (use .csv, .jsonl or .parquet)")
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path}: cannot read labels ({exc})") from None
    for role, name in (("prompt", cols.prompt), ("response", cols.response), ("label", cols.label)):
        if name not in table.column_names:
            raise InputError(f"{path}: no {role} column {name!r}; columns: {', '.join(table.column_names)}")
    out = []
    langs = table[cols.lang].to_pylist() if cols.lang in table.column_names else [None] * table.num_rows
    for i, (p, r, y, lang) in enumerate(
        zip(table[cols.prompt].to_pylist(), table[cols.response].to_pylist(), table[cols.label].to_pylist(), langs)
    ):
        try:
            unsafe = float(y) > 0 if not isinstance(y, str) else y.strip().lower() in ("1", "true", "unsafe", "yes")
        except (TypeError, ValueError):
            raise InputError(f"{path}: row {i + 1}: label {y!r} in {cols.label!r} is not a number or boolean") from None
        language = (
            lang if lang in ("zh", "en") else ("zh" if any("\u4e00" <= ch <= "\u9fff" for ch in str(p)) else "en")
        )
        out.append((JudgeItem(prompt=str(p or ""), response=str(r or ""), lang=language), unsafe))
    return out


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
