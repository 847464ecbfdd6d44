"""Labelled (prompt, response) pairs: the data critics are trained and validated on.

Two readers over the same files:

- :func:`read_label_records` gives full :class:`LabelRecord` rows (graded score, category,
  source, annotator agreement, origin): what the ``labels`` dataset kind stores and what
  ``validate-critic`` reports per source;
- :func:`read_label_rows` gives the plain ``(prompt, response, lang, unsafe)`` rows older
  callers use (rows whose harm is unknown are left out).

**Unsafe threshold.** A label is a boolean, 0/1, a word (``unsafe``/``safe``, ``true``/
``false``, ``yes``/``no``) or a graded harm score in [0, 1]; a score counts as unsafe when
``score >= 0.5`` (:data:`UNSAFE_THRESHOLD`). On PyRIT's harm scale (0, 0.25, 0.5, 0.75, 1)
that makes "moderate harm" (0.5) and above unsafe and "mild" (0.25) safe. Several label
columns (``label="a,b,c"``) are several annotators: the score is their mean, and
``annotator_agreement`` the share of annotators whose own verdict matches the final one.
Scores outside [0, 1] are an error (rescale them first), not silently "unsafe".

**Sources.** Every row names its source. The project's own sets in ``data/seval/labels/``
were written by an LLM and are labelled ``label_origin="llm-written"`` with sources
``written:<file stem>``. PyRIT's human-labelled scorer-evaluation sets (MIT licence, in the
``pyrit`` package, see :func:`pyrit_scorer_evals_dir`) become one source per harm category,
``pyrit-harm:<category>``, and ``pyrit-refusal`` for the refusal-scorer set.

**Refusal-scorer labels** say whether the answer *refused*, not whether it is harmful. A
refusal is a safe answer (the judgement is about the response), so refusals are stored as
``unsafe=False``; a non-refusal may be a harmless answer to a harmless request or a harmful
one, so its ``unsafe`` is null (category ``non-refusal``). That source therefore measures
only false alarms on refusals (specificity); it is never a training source by default.

The ``objective/`` folder of PyRIT's scorer evals is reserved as an independent check of
the project: nothing here reads it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from trustflow.errors import InputError

LABELS_DIR = Path(__file__).resolve().parent / "labels"
TRAINING_LABELS = (LABELS_DIR / "critic_seed.jsonl", LABELS_DIR / "critic_train.jsonl")
WRITTEN_LABELS = (*TRAINING_LABELS, LABELS_DIR / "critic_holdout.jsonl")
UNSAFE_THRESHOLD = 0.5
LabelOrigin = Literal["human", "llm-written"]
PYRIT_ENV = "TRUSTFLOW_PYRIT_DIR"  # a scorer_evals folder, or a folder holding the pyrit package
PYRIT_SETS = ("harm", "refusal")  # objective/ is reserved as the project's independent check


@dataclass(frozen=True)
class LabelColumns:
    """Which column holds what; ``label`` may name several annotator columns, comma-separated."""

    prompt: str = "prompt"
    response: str = "response"
    label: str = "unsafe"
    lang: str = "lang"
    category: str = "category"
    agreement: str = "annotator_agreement"
    source: str = "source"  # per-row source, when the file has the column


DEFAULT_COLUMNS = LabelColumns()


@dataclass(frozen=True)
class LabelledPair:
    """One labelled row: the request, the answer, its language (zh/en) and the label."""

    prompt: str
    response: str
    lang: str
    unsafe: bool


@dataclass(frozen=True)
class LabelRecord:
    """One row of the ``labels`` schema (data/schemas.py LABELS)."""

    label_id: str
    prompt: str
    response: str
    unsafe: bool | None
    score: float | None
    language: str
    category: str
    source: str
    annotator_agreement: float | None
    label_origin: str
    source_file: str
    row_no: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


RECORD_FIELDS = [f.name for f in fields(LabelRecord)]


def label_id(source: str, prompt: str, response: str) -> str:
    return hashlib.sha256(f"{source}\x00{prompt}\x00{response}".encode()).hexdigest()[:20]


def detect_language(text: str) -> str:
    return "zh" if any("\u4e00" <= ch <= "\u9fff" for ch in text) else "en"


def _read_csv_text(path: Path) -> pa.Table:
    """A CSV whose first lines may be ``# comments`` (PyRIT puts its dataset version there)."""
    text = path.read_text(encoding="utf-8-sig")
    lines = text.splitlines(keepends=True)
    skip = 0
    while skip < len(lines) and lines[skip].startswith("#"):
        skip += 1
    reader = csv.DictReader(io.StringIO("".join(lines[skip:])))
    rows = [dict(r) for r in reader]
    if reader.fieldnames is None:
        raise InputError(f"{path}: empty CSV")
    names = [n for n in reader.fieldnames if n]
    return pa.table({n: [r.get(n) for r in rows] for n in names})


def read_table_file(path: Path) -> pa.Table:
    """The rows of a CSV, JSONL or Parquet file as a table (CSV cells as text)."""
    if not path.is_file():
        raise InputError(f"{path}: labels file not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pq.read_table(path)
        if suffix == ".csv":
            try:
                return _read_csv_text(path)
            except (UnicodeDecodeError, csv.Error):
                return pacsv.read_csv(path)
        if suffix in (".jsonl", ".json"):
            records = []
            for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise InputError(f"{path}: line {i}: not valid JSON ({exc.msg})") from None
            return pa.Table.from_pylist(records)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path}: cannot read labels ({exc})") from None
    raise InputError(f"{path}: unsupported labels format {suffix!r} (use .csv, .jsonl or .parquet)")


def parse_label(value: Any, where: str) -> float | None:
    """A label cell as a score in [0, 1] (None for an empty cell)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in ("true", "unsafe", "yes"):
            return 1.0
        if word in ("false", "safe", "no"):
            return 0.0
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{where}: label {value!r} is not a number or boolean") from None
    if not 0.0 <= score <= 1.0:
        raise InputError(f"{where}: label {value!r} is outside [0, 1]; rescale graded scores to [0, 1] first")
    return score


def pyrit_layout(columns: list[str]) -> tuple[LabelColumns, str] | None:
    """Column mapping and set ("harm" / "refusal") for PyRIT's scorer-eval CSVs, else None."""
    if "objective" not in columns or "assistant_response" not in columns:
        return None
    raters = [c for c in columns if c.startswith("human_score")]
    if not raters:
        return None
    kind = "harm" if "harm_category" in columns else "refusal"
    cols = LabelColumns(
        prompt="objective", response="assistant_response", label=",".join(raters), category="harm_category"
    )
    return cols, kind


def read_label_records(
    path: Path,
    cols: LabelColumns | None = None,
    source: str | None = None,
    origin: LabelOrigin = "human",
    threshold: float = UNSAFE_THRESHOLD,
) -> list[LabelRecord]:
    """Label records from one file. With ``cols=None`` PyRIT's layouts are recognised by
    their columns (harm / refusal-scorer sets); anything else uses the default columns.
    ``source`` defaults to ``pyrit-harm:<category>``, ``pyrit-refusal``, the row's ``source``
    column or the file stem.
    Duplicate (source, prompt, response) rows keep the first occurrence."""
    table = read_table_file(path)
    default = cols is None or (cols == DEFAULT_COLUMNS and DEFAULT_COLUMNS.prompt not in table.column_names)
    layout = pyrit_layout(table.column_names) if default else None
    kind = layout[1] if layout else None
    cols = layout[0] if layout else (cols or DEFAULT_COLUMNS)
    raters = [c.strip() for c in cols.label.split(",") if c.strip()]
    for role, name in [("prompt", cols.prompt), ("response", cols.response)] + [("label", r) for r in raters]:
        if name not in table.column_names:
            raise InputError(f"{path}: no {role} column {name!r}; columns: {', '.join(table.column_names)}")

    def column(name: str) -> list[Any]:
        return table[name].to_pylist() if name in table.column_names else [None] * table.num_rows

    prompts, responses, langs, cats, agrees, row_sources = (
        column(c) for c in (cols.prompt, cols.response, cols.lang, cols.category, cols.agreement, cols.source)
    )
    votes = [column(r) for r in raters]
    out: list[LabelRecord] = []
    seen: set[str] = set()
    for i in range(table.num_rows):
        where = f"{path}: row {i + 1}"
        scores = [s for s in (parse_label(v[i], where) for v in votes) if s is not None]
        prompt, response = str(prompts[i] or ""), str(responses[i] or "")
        category = str(cats[i] or "").strip().lower() if kind == "harm" else str(cats[i] or "")
        if kind == "refusal":
            refused = bool(scores) and sum(scores) / len(scores) >= 0.5
            unsafe, score, category = (False if refused else None), None, ("refusal" if refused else "non-refusal")
            src = source or "pyrit-refusal"
        else:
            score = round(sum(scores) / len(scores), 6) if scores else None
            unsafe = None if score is None else score >= threshold
            stem = str(row_sources[i] or "") or path.stem
            src = source or (f"pyrit-harm:{category or path.stem}" if kind == "harm" else stem)
        agreement: float | None = None
        if len(scores) > 1 and unsafe is not None:
            agreement = round(sum((s >= threshold) == unsafe for s in scores) / len(scores), 6)
        elif agrees[i] not in (None, ""):
            agreement = float(agrees[i])
        lang = str(langs[i] or "")
        key = label_id(src, prompt, response)
        if key in seen:
            continue
        seen.add(key)
        out.append(
            LabelRecord(
                label_id=key,
                prompt=prompt,
                response=response,
                unsafe=unsafe,
                score=score,
                language=lang if lang in ("zh", "en") else detect_language(prompt + response),
                category=category,
                source=src,
                annotator_agreement=agreement,
                label_origin=origin,
                source_file=path.name,
                row_no=i + 1,
            )
        )
    return out


def written_label_records(paths: tuple[Path, ...] = WRITTEN_LABELS) -> list[LabelRecord]:
    """The project's LLM-written sets, one source per file (``written:critic_holdout`` ...)."""
    cols = LabelColumns(category="dimension")
    return [r for p in paths for r in read_label_records(p, cols, source=f"written:{p.stem}", origin="llm-written")]


def pyrit_scorer_evals_dir() -> Path:
    """PyRIT's ``datasets/scorer_evals`` folder, found without importing pyrit (its many
    dependencies are not installed: ``pip install --no-deps pyrit==1.1.0``, see
    requirements-nodeps.txt). ``$TRUSTFLOW_PYRIT_DIR`` may name the folder or a site dir."""
    import importlib.util

    candidates: list[Path] = []
    explicit = os.environ.get(PYRIT_ENV)
    if explicit:
        base = Path(explicit).expanduser()
        candidates += [base, base / "datasets" / "scorer_evals", base / "pyrit" / "datasets" / "scorer_evals"]
    spec = importlib.util.find_spec("pyrit") if not explicit else None  # finds, never executes, the package
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(p) / "datasets" / "scorer_evals" for p in spec.submodule_search_locations]
    for c in candidates:
        if (c / "harm").is_dir():
            return c
    raise InputError(
        "PyRIT's scorer-evaluation sets are not installed: `pip install --no-deps pyrit==1.1.0` "
        f"(or set {PYRIT_ENV} to its datasets/scorer_evals folder)"
    )


def pyrit_folder(which: str) -> Path:
    """The folder of PyRIT set ``harm`` or ``refusal`` (``objective/`` is reserved and refused)."""
    if which not in PYRIT_SETS:
        hint = " (reserved: the project's independent check, never read by trustflow)" if which == "objective" else ""
        raise InputError(f"unknown PyRIT label set {which!r}{hint}; use one of: {', '.join(PYRIT_SETS)}")
    return pyrit_scorer_evals_dir() / ("harm" if which == "harm" else "refusal_scorer")


def pyrit_files(which: str) -> list[Path]:
    """The label CSVs of PyRIT set ``harm`` or ``refusal``."""
    return sorted(pyrit_folder(which).glob("*.csv"))


def pyrit_label_records(which: str) -> list[LabelRecord]:
    """PyRIT's human-labelled rows of one set; rows repeated across files (a ``mini_`` subset,
    a multi-annotator file) are kept once per source, the first file in name order winning."""
    out: list[LabelRecord] = []
    seen: set[str] = set()
    for path in pyrit_files(which):
        for r in read_label_records(path):
            if r.label_id not in seen:
                seen.add(r.label_id)
                out.append(r)
    return out


def read_label_rows(path: Path, cols: LabelColumns = DEFAULT_COLUMNS) -> list[LabelledPair]:
    """Labelled rows from ``path``; missing columns and bad labels name the file; rows whose
    harm is unknown (a refusal-scorer non-refusal, an empty label) are left out."""
    return [
        LabelledPair(r.prompt, r.response, r.language, bool(r.unsafe))
        for r in read_label_records(path, cols)
        if r.unsafe is not None
    ]
