"""Where labelled pairs come from, by one name: a file, a shipped set, PyRIT, or the store.

``--labels`` of ``validate-critic`` / ``train-critic`` and the critic benchmark accept:

- ``pyrit:harm`` / ``pyrit:refusal``: PyRIT's human-labelled scorer-evaluation sets, found in
  the installed ``pyrit`` package (``data/seval/labels.pyrit_scorer_evals_dir``);
- ``written`` or ``written:<stem>``: the project's LLM-written sets in ``data/seval/labels/``;
- ``labels-<hex>``: a ``labels`` dataset already ingested into the store;
- ``relabel:<run>`` (or ``relabel`` for every run): the verdicts people corrected with
  ``trustflow seval relabel`` (tasks/seval/relabel.py), newest dataset winning per pair;
- a CSV, JSONL or Parquet file (with a column mapping).

:func:`sample_records` draws the deterministic, label-balanced subsample the benchmark
extracts features for (the draw depends only on the label ids, so it is reproducible and
stable when rows are added elsewhere).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from trustflow import names
from trustflow.data.seval.labels import (
    LABELS_DIR,
    RECORD_FIELDS,
    WRITTEN_LABELS,
    LabelColumns,
    LabelRecord,
    pyrit_label_records,
    read_label_records,
    written_label_records,
)
from trustflow.data.store import ArtifactStore, StageRef
from trustflow.errors import InputError
from trustflow.models.critics.base import JudgeItem


def load_label_records(
    spec: str, cols: LabelColumns | None = None, store: ArtifactStore | None = None
) -> list[LabelRecord]:
    """The label records ``spec`` names (see the module docstring)."""
    if spec.startswith("pyrit:"):
        return pyrit_label_records(spec.removeprefix("pyrit:"))
    if spec == "written":
        return written_label_records()
    if spec.startswith("written:"):
        stem = spec.removeprefix("written:")
        path = LABELS_DIR / f"{stem}.jsonl"
        if not path.is_file():
            known = ", ".join(f"written:{p.stem}" for p in WRITTEN_LABELS)
            raise InputError(f"no written label set {stem!r}; known: {known}")
        return written_label_records((path,))
    if spec.startswith("labels-") and not Path(spec).exists():
        if store is None:
            raise InputError(f"{spec}: an ingested labels dataset needs the store")
        return _stored_records(store, spec)
    if spec == "relabel" or spec.startswith("relabel:"):
        if store is None:
            raise InputError(f"{spec}: relabelled verdicts live in the store")
        newest: dict[str, LabelRecord] = {}
        for dataset_id in _relabel_ids(store, spec):
            newest.update({r.label_id: r for r in _stored_records(store, dataset_id)})
        if not newest:
            raise InputError(f"{spec}: no relabelled verdicts in {store.url} (see `trustflow seval relabel --help`)")
        return list(newest.values())
    return read_label_records(Path(spec), cols)


def _stored_records(store: ArtifactStore, dataset_id: str) -> list[LabelRecord]:
    table = store.read_table(StageRef(names.INGEST, dataset_id, names.LABELS)).to_pydict()
    return [LabelRecord(**{f: table[f][i] for f in RECORD_FIELDS}) for i in range(len(table["label_id"]))]


def _relabel_ids(store: ArtifactStore, spec: str) -> list[str]:
    from trustflow.tasks.seval.relabel import relabel_datasets

    run_id = spec.removeprefix("relabel").removeprefix(":") or None
    return [d.dataset_id for d in relabel_datasets(store, run_id)]


def label_datasets(spec: str, store: ArtifactStore | None) -> list[dict[str, str]]:
    """The store datasets a spec reads (id, content fingerprint, source), for provenance:
    a head or a validation result records them, so the exact labels can be found again."""
    from trustflow.tasks.ingest.common import existing_dataset

    if store is None or Path(spec).exists():
        return []
    if spec.startswith("labels-"):
        ids = [spec]
    elif spec == "relabel" or spec.startswith("relabel:"):
        ids = _relabel_ids(store, spec)
    else:
        return []
    out = []
    for dataset_id in ids:
        info = existing_dataset(store, dataset_id)
        out.append(
            {
                "dataset_id": dataset_id,
                "fingerprint": info.fingerprint if info else "",
                "source": info.source if info else "",
            }
        )
    return out


def records_sha(records: Sequence[LabelRecord]) -> str:
    """A hash of exactly what trains: each row's label id and label, in id order."""
    body = "\n".join(sorted(f"{r.label_id}:{int(bool(r.unsafe))}" for r in records if r.unsafe is not None))
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def judge_item(record: LabelRecord) -> JudgeItem:
    return JudgeItem(prompt=record.prompt, response=record.response, lang="zh" if record.language == "zh" else "en")


def _rank(label_id: str) -> str:
    return hashlib.sha256(f"critic-sample-v1|{label_id}".encode()).hexdigest()


def sample_records(records: Sequence[LabelRecord], per_source: int) -> list[LabelRecord]:
    """Up to ``per_source`` labelled rows per source, half of each class where the source
    has enough (the short class is taken whole and the other fills the rest), drawn by a
    hash of the label id; rows with unknown harm are dropped. Order: source, then draw."""
    by: dict[tuple[str, bool], list[LabelRecord]] = defaultdict(list)
    for r in records:
        if r.unsafe is not None:
            by[(r.source, r.unsafe)].append(r)
    out: list[LabelRecord] = []
    for source in sorted({s for s, _ in by}):
        pos = sorted(by[(source, True)], key=lambda r: _rank(r.label_id))
        neg = sorted(by[(source, False)], key=lambda r: _rank(r.label_id))
        half = per_source // 2
        take_pos = min(len(pos), max(half, per_source - len(neg)))
        take_neg = min(len(neg), per_source - take_pos)
        out += pos[:take_pos] + neg[:take_neg]
    return out
