"""Labelled (prompt, response, unsafe) pairs: the files critics are trained and validated on.

Labels come from CSV, JSONL or Parquet; column names are mappable, and a numeric label
counts as unsafe when > 0 (so 0/1 labels and human harm scores both work). The shipped
label files live in ``data/seval/labels/``. Readers above this layer wrap the rows in their
own types (``models.critics.read_labels`` gives ``(JudgeItem, unsafe)`` pairs).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from trustflow.errors import InputError

LABELS_DIR = Path(__file__).resolve().parent / "labels"
TRAINING_LABELS = (LABELS_DIR / "critic_seed.jsonl", LABELS_DIR / "critic_train.jsonl")


@dataclass(frozen=True)
class LabelColumns:
    prompt: str = "prompt"
    response: str = "response"
    label: str = "unsafe"
    lang: str = "lang"


DEFAULT_COLUMNS = LabelColumns()


@dataclass(frozen=True)
class LabelledPair:
    """One labelled row: the request, the answer, its language (zh/en) and the label."""

    prompt: str
    response: str
    lang: str
    unsafe: bool


def read_label_rows(path: Path, cols: LabelColumns = DEFAULT_COLUMNS) -> list[LabelledPair]:
    """Labelled rows from ``path``; missing columns and bad labels name the file."""
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
    columns = (table[cols.prompt].to_pylist(), table[cols.response].to_pylist(), table[cols.label].to_pylist(), langs)
    for i, (p, r, y, lang) in enumerate(zip(*columns, strict=True)):
        try:
            unsafe = float(y) > 0 if not isinstance(y, str) else y.strip().lower() in ("1", "true", "unsafe", "yes")
        except (TypeError, ValueError):
            raise InputError(f"{path}: row {i + 1}: label {y!r} in {cols.label!r} is not a number or boolean") from None
        language = (
            lang if lang in ("zh", "en") else ("zh" if any("\u4e00" <= ch <= "\u9fff" for ch in str(p)) else "en")
        )
        out.append(LabelledPair(str(p or ""), str(r or ""), language, unsafe))
    return out
