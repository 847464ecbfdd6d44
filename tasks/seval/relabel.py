"""Verdicts a person corrected become labels that critics train and validate on.

The loop: ``trustflow seval verdicts RUN --csv verdicts.csv`` (or the report's "Flagged
verdicts" section, which links the same CSV) lists a run's verdicts with their judgement
id, request, answer, the critic's verdict, tags and rationale, and an empty
``corrected_unsafe`` column; a person fills it in (``unsafe``/``safe``, ``1``/``0``,
``true``/``false``; empty = not reviewed) and ``trustflow seval relabel verdicts.csv
--annotator NAME`` stores the reviewed rows as a ``labels`` dataset (``labels-<hex>``, source
``relabel:<run>``, ``label_origin=human``) that ``--labels labels-<hex>`` or
``--labels relabel:<run>`` hands to ``train-critic`` and ``validate-critic``. The triage viewer
(``trustflow view RUN``, tasks/seval/viewer.py) relabels from its page through the same
:func:`import_relabels`, one row per post; its exported CSV is this CSV.

Choices:

- **The store's text wins.** A row naming a ``judgement_id`` takes its request and answer
  from the run (an editor that re-wraps a cell cannot change what is labelled); a row without
  one must carry ``prompt`` and ``response``. An unknown id is an error naming the row.
- **Who.** The annotator is required (``--annotator`` or an ``annotator`` column): a label
  nobody can be asked about is not a human label. It is stored per row in the dataset's
  ``relabels`` stage (schema ``seval_relabels``, with the critic's verdict beside the
  person's), and the dataset's manifest lists the annotators.
- **Conflicts.** The same pair labelled both ways in one file is an error naming both rows.
  Across files, ``relabel:<run>`` lets the newest dataset win per pair.
- **Same file twice** is a no-op: the dataset id is a hash of the file, run and annotator.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from trustflow import names
from trustflow.data.schemas import LABELS, SEVAL_RELABELS
from trustflow.data.seval.labels import LabelRecord, label_id, parse_label, read_table_file
from trustflow.data.store import ArtifactStore, StageRef
from trustflow.errors import InputError
from trustflow.tasks.ingest.common import (
    DatasetInfo,
    dataset_id_for,
    existing_dataset,
    list_datasets,
    stage_ref,
    write_summary,
)
from trustflow.tasks.ingest.kinds.labels import LABEL_KEYS, records_table
from trustflow.tasks.seval.judging import judgement_id, read_judgements

RELABELS = "relabels"  # stage of a relabel dataset: who changed which verdict, from what to what
LABEL_COLUMN = "corrected_unsafe"
SOURCE_PREFIX = "relabel:"
EXPORT_COLUMNS = [
    "judgement_id",
    "run_id",
    "model",
    "lang",
    "dimension",
    "critic_id",
    "risk_score",
    "critic_unsafe",
    "risk_tags",
    "rationale",
    "prompt",
    "response",
    LABEL_COLUMN,
    "annotator",
    "note",
]


def run_verdicts(
    store: ArtifactStore, run_id: str, flagged_only: bool = True, response_ids: list[str] | None = None
) -> list[dict[str, Any]]:
    """The run's verdicts (unsafe ones only by default, riskiest first) with their text, as
    the rows of the relabel CSV (``corrected_unsafe``, ``annotator`` and ``note`` empty).
    ``response_ids`` restricts the read to those responses (a viewer relabelling one row of a
    220k-row run must not read them all)."""
    ref = StageRef(names.SEVAL_EVALUATE, run_id, names.JUDGEMENTS)
    if store.manifest(ref) is None:
        raise InputError(f"run {run_id!r} has no judgements in {store.url} (see `trustflow runs ls`)")
    only = None if response_ids is None else pc.is_in(pc.field("response_id"), value_set=pa.array(response_ids))
    judged = read_judgements(store, ref, filter=only)
    if flagged_only:
        judged = judged.filter(pc.fill_null(judged["unsafe"], False))
    responses = store.read_table(
        StageRef(names.SEVAL_EVALUATE, run_id, names.RESPONSES),
        columns=["response_id", "prompt", "response"],
        filter=only,
    ).to_pydict()
    text = dict(
        zip(responses["response_id"], zip(responses["prompt"], responses["response"], strict=True), strict=True)
    )
    rows = []
    for r in judged.to_pylist():
        prompt, response = text.get(r["response_id"], ("", ""))
        rows.append(
            {
                "judgement_id": judgement_id(r["response_id"], r["critic_id"], r["critic_prompt_hash"]),
                "run_id": run_id,
                "model": r["model"],
                "lang": r["lang"],
                "dimension": r["dimension"],
                "critic_id": r["critic_id"],
                "risk_score": r["risk_score"],
                "critic_unsafe": r["unsafe"],
                "risk_tags": ";".join(r["risk_tags"] or []),
                "rationale": r["rationale"] or "",
                "prompt": prompt,
                "response": response,
                LABEL_COLUMN: "",
                "annotator": "",
                "note": "",
                "_response_id": r["response_id"],
            }
        )
    return sorted(rows, key=lambda r: (-(r["risk_score"] or 0.0), r["judgement_id"]))


def verdicts_csv(rows: list[dict[str, Any]]) -> str:
    """The relabel CSV text (what ``seval verdicts --csv`` writes and the report links)."""
    import io

    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=EXPORT_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: "" if r.get(k) is None else r.get(k) for k in EXPORT_COLUMNS})
    return out.getvalue()


def _one(values: list[Any], what: str, path: Path) -> str | None:
    found = sorted({str(v).strip() for v in values if v not in (None, "") and str(v).strip()})
    if len(found) > 1:
        raise InputError(
            f"{path}: several {what}s in one file ({', '.join(found[:5])}); pass --{what.replace('_', '-')}"
        )
    return found[0] if found else None


def import_relabels(
    store: ArtifactStore,
    path: Path,
    annotator: str | None = None,
    run_id: str | None = None,
    label_col: str = LABEL_COLUMN,
) -> DatasetInfo:
    """Store the reviewed rows of a relabel CSV as a ``labels`` dataset (see the module docstring)."""
    table = read_table_file(path)
    cols = table.column_names
    if label_col not in cols:
        raise InputError(f"{path}: no label column {label_col!r}; columns: {', '.join(cols)}")
    if "judgement_id" not in cols and not {"prompt", "response"} <= set(cols):
        raise InputError(f"{path}: each row needs a judgement_id column, or prompt and response columns")
    data = {c: [None if v is None else str(v) for v in table[c].to_pylist()] for c in cols}
    n = table.num_rows
    run_id = run_id or _one(data.get("run_id", []), "run", path)
    if not run_id:
        raise InputError(f"{path}: which run were these verdicts from? pass --run (or give a run_id column)")
    per_row_annotator = data.get("annotator", [None] * n)
    if not annotator and not any(a and a.strip() for a in per_row_annotator):
        raise InputError(f"{path}: name the person who relabelled: --annotator NAME (or an annotator column)")
    known: dict[str, dict[str, Any]] = {}
    if "judgement_id" in cols and any(data["judgement_id"]):
        # a response_id column (the viewer's CSVs) narrows the read; the judgement ids still decide
        narrow = None
        if "response_id" in cols and all(
            r for j, r in zip(data["judgement_id"], data["response_id"], strict=True) if j
        ):
            narrow = sorted({r for r in data["response_id"] if r})
        known = {r["judgement_id"]: r for r in run_verdicts(store, run_id, flagged_only=False, response_ids=narrow)}
    source = f"{SOURCE_PREFIX}{run_id}"
    records: dict[str, LabelRecord] = {}
    audits: list[dict[str, Any]] = []
    first_row: dict[str, int] = {}
    for i in range(n):
        where = f"{path}: row {i + 1}"
        score = parse_label(data[label_col][i], where)
        if score is None:
            continue  # not reviewed
        jid = (data.get("judgement_id") or [None] * n)[i]
        verdict = known.get(jid) if jid else None
        if jid and verdict is None:
            raise InputError(f"{where}: judgement {jid!r} is not in run {run_id!r}")
        if verdict is not None:
            prompt, response = verdict["prompt"], verdict["response"]
            lang, category = verdict["lang"], verdict["dimension"]
        else:
            prompt, response = data["prompt"][i] or "", data["response"][i] or ""
            lang, category = (data.get("lang") or [None] * n)[i] or "", (data.get("dimension") or [None] * n)[i] or ""
            if not prompt.strip() or not response.strip():
                raise InputError(f"{where}: no judgement_id, and the prompt or response is empty")
        who = (per_row_annotator[i] or "").strip() or (annotator or "")
        unsafe = score >= 0.5
        key = label_id(source, prompt, response)
        if key in records and records[key].unsafe != unsafe:
            raise InputError(f"{path}: rows {first_row[key]} and {i + 1} label the same answer both safe and unsafe")
        if key in records:
            continue
        first_row[key] = i + 1
        records[key] = LabelRecord(
            label_id=key,
            prompt=prompt,
            response=response,
            unsafe=unsafe,
            score=None if score in (0.0, 1.0) else score,
            language="zh"
            if lang == "zh"
            else "en"
            if lang == "en"
            else ("zh" if _has_cjk(prompt + response) else "en"),
            category=category,
            source=source,
            annotator_agreement=None,
            label_origin="human",
            source_file=path.name,
            row_no=i + 1,
        )
        audits.append(
            {
                "label_id": key,
                "run_id": run_id,
                "judgement_id": jid or "",
                "response_id": verdict["_response_id"] if verdict else None,
                "critic_id": verdict["critic_id"] if verdict else None,
                "model": verdict["model"] if verdict else (data.get("model") or [None] * n)[i],
                "critic_unsafe": verdict["critic_unsafe"] if verdict else None,
                "critic_risk_score": verdict["risk_score"] if verdict else None,
                "unsafe": unsafe,
                "annotator": who,
                "note": ((data.get("note") or [None] * n)[i] or None),
                "row_no": i + 1,
            }
        )
    if not records:
        raise InputError(f"{path}: no reviewed rows (fill {label_col} with unsafe/safe, 1/0 or true/false)")
    fingerprint = hashlib.sha256(path.read_bytes() + f"\x00{run_id}\x00{annotator or ''}".encode()).hexdigest()
    dataset_id = dataset_id_for("labels", fingerprint)
    done = existing_dataset(store, dataset_id)
    if done is not None:
        return done
    labels_table = records_table(list(records.values()))
    annotators = sorted({a["annotator"] for a in audits})
    flipped = sum(1 for a in audits if a["critic_unsafe"] is not None and a["critic_unsafe"] != a["unsafe"])
    attrs = {
        "sources": [source],
        "run_id": run_id,
        "annotators": annotators,
        "file": path.name,
        "reviewed": len(audits),
        "flipped": flipped,
    }
    manifests = {
        names.LABELS: store.write_stage(stage_ref(dataset_id, names.LABELS), LABELS, labels_table, LABEL_KEYS, attrs),
        RELABELS: store.write_stage(
            stage_ref(dataset_id, RELABELS),
            SEVAL_RELABELS,
            pa.Table.from_pylist(audits, schema=SEVAL_RELABELS.schema),
            ["label_id"],
            attrs,
        ),
    }
    return write_summary(store, dataset_id, "labels", source, fingerprint, manifests)


def _has_cjk(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def relabel_datasets(store: ArtifactStore, run_id: str | None = None) -> list[DatasetInfo]:
    """Relabel datasets in the store (of one run, or every run), oldest first."""
    found = [d for d in list_datasets(store) if d.kind == "labels" and d.source.startswith(SOURCE_PREFIX)]
    if run_id is not None:
        found = [d for d in found if d.source == f"{SOURCE_PREFIX}{run_id}"]
    when = {d.dataset_id: store.require_manifest(stage_ref(d.dataset_id, names.SUMMARY)).created_at for d in found}
    return sorted(found, key=lambda d: (when[d.dataset_id], d.dataset_id))
