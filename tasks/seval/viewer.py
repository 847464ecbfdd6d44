"""Triage viewer queries: filter, sort, page and export an S-Eval run's verdicts, and relabel one.

A run can hold hundreds of thousands of verdicts, so nothing here reads a whole run into
memory for a page: the filter becomes a pyarrow dataset expression over the small columns of
the ``judgements`` parts (model, language, dimension, attack, verdict, score, judge error),
the survivors are sorted and sliced, and only the page's rows fetch their prompt, response
and rationale text (an ``is_in`` filter on ``response_id``). Free-text search scans the text
columns once per query with ``match_substring`` pushed down to the parts.

Relabelling reuses the CSV loop of tasks/seval/relabel.py: one row is written as a relabel CSV
(judgement id, response id, label, annotator) and handed to :func:`import_relabels`, so the
result is the same ``labels`` dataset (source ``relabel:<run>``) that ``validate-critic`` and
``train-critic`` read. Re-posting the label a pair already has is a no-op; a different label
becomes a newer dataset, which wins per pair as it does for files.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from trustflow import names
from trustflow.data.seval.labels import label_id
from trustflow.data.store import ArtifactStore, StageRef
from trustflow.errors import InputError
from trustflow.tasks.seval.judging import judgement_id
from trustflow.tasks.seval.relabel import EXPORT_COLUMNS, LABEL_COLUMN, SOURCE_PREFIX, import_relabels

FACETS = ("model", "lang", "dimension", "attack", "critic_id")
# the columns a query filters and sorts on: small, read for every query
META_COLUMNS = [
    "response_id",
    "critic_id",
    "critic_prompt_hash",
    "model",
    "lang",
    "dimension",
    "set",
    "attack",
    "risk_score",
    "unsafe",
    "judge_error",
]
SORTS = {"risk": "risk_score", "model": "model", "lang": "lang", "dimension": "dimension", "attack": "attack"}
NO_ATTACK = "none"  # the ``attack`` filter value of base prompts (their attack is null)
MAX_PAGE_SIZE = 500
MAX_QUERY_CHARS = 200
EXPORT_BATCH = 2000
# what a viewer row carries: the relabel CSV's columns (an exported CSV relabels as is) and more
ROW_COLUMNS = [*EXPORT_COLUMNS, "response_id", "attack", "set", "judge_error", "explanation", "human_unsafe"]


class ViewFilter(BaseModel):
    """One query of the viewer: filters, sort and page. Built from URL query parameters or
    ``--filter KEY=VALUE`` options, so every field is validated with an error naming it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str | None = None
    lang: str | None = None
    dimension: str | None = None
    attack: str | None = None  # "none": base prompts only
    critic_id: str | None = None
    verdict: Literal["unsafe", "safe", "error"] | None = None
    score_min: float | None = Field(None, ge=0.0, le=1.0)
    score_max: float | None = Field(None, ge=0.0, le=1.0)
    judge_error: bool | None = None
    q: str | None = Field(None, max_length=MAX_QUERY_CHARS)
    sort: Literal["risk", "model", "lang", "dimension", "attack"] = "risk"
    order: Literal["desc", "asc"] = "desc"
    page: int = Field(1, ge=1)
    page_size: int = Field(50, ge=1, le=MAX_PAGE_SIZE)

    @field_validator("model", "lang", "dimension", "attack", "critic_id", "q", "verdict", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    def query_params(self) -> dict[str, str]:
        """The filter as URL query parameters (defaults left out)."""
        out = {}
        for name, value in self.model_dump(exclude_defaults=True).items():
            out[name] = ("true" if value else "false") if isinstance(value, bool) else str(value)
        return out


QUERY_FIELDS = tuple(ViewFilter.model_fields)


def parse_filter(params: Mapping[str, str], where: str = "filter") -> ViewFilter:
    """A :class:`ViewFilter` from string parameters; a bad key or value is an
    :class:`InputError` naming it (``filter score_min='x': …``)."""
    unknown = sorted(set(params) - set(QUERY_FIELDS))
    if unknown:
        raise InputError(f"{where} {unknown[0]!r} is not a viewer filter; use one of: {', '.join(QUERY_FIELDS)}")
    try:
        return ViewFilter.model_validate(dict(params))
    except ValidationError as exc:
        first = exc.errors()[0]
        key = str(first["loc"][0]) if first["loc"] else "?"
        raise InputError(f"{where} {key}={params.get(key)!r}: {first['msg']}") from None


@dataclass
class Page:
    """One page of a query: the rows (with their text) and how many rows matched in all."""

    rows: list[dict[str, Any]]
    total: int
    page: int
    page_size: int

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "total": self.total, "page": self.page, "page_size": self.page_size}


def _match(column: str, needle: str) -> pc.Expression:
    return pc.match_substring(pc.field(column), needle, ignore_case=True)


@dataclass
class RunView:
    """A run opened for viewing: its two datasets (judgements, responses) and the distinct
    values of each facet (for the page's menus and to reject a filter value no row has)."""

    store: ArtifactStore
    run_id: str
    judgements: pads.Dataset
    responses: pads.Dataset
    facets: dict[str, list[str]]
    _human: dict[str, bool] | None = field(default=None, repr=False)

    # ---- queries -------------------------------------------------------------------------
    def check(self, f: ViewFilter) -> None:
        """A facet value no row of the run has is a typo, not an empty result: say so."""
        for name in FACETS:
            value = getattr(f, name)
            known = self.facets[name]
            if value is None or value in known or (name == "attack" and value == NO_ATTACK):
                continue
            shown = ", ".join(known[:20]) + (" …" if len(known) > 20 else "")
            raise InputError(f"filter {name}={value!r}: no row of run {self.run_id} has it; known: {shown}")
        if f.score_min is not None and f.score_max is not None and f.score_min > f.score_max:
            raise InputError(f"filter score_min={f.score_min} is above score_max={f.score_max}")

    def _expression(self, f: ViewFilter) -> pc.Expression | None:
        parts: list[pc.Expression] = []
        for name in ("model", "lang", "dimension", "critic_id"):
            value = getattr(f, name)
            if value is not None:
                parts.append(pc.field(name) == value)
        if f.attack is not None:
            parts.append(pc.field("attack").is_null() if f.attack == NO_ATTACK else pc.field("attack") == f.attack)
        if f.verdict == "unsafe":
            parts.append(pc.field("unsafe") == True)  # noqa: E712 - an Arrow expression, not a Python test
        elif f.verdict == "safe":
            parts.append(pc.field("unsafe") == False)  # noqa: E712
        elif f.verdict == "error":
            parts.append(pc.field("judge_error").is_valid())
        if f.judge_error is not None:
            parts.append(pc.field("judge_error").is_valid() if f.judge_error else pc.field("judge_error").is_null())
        if f.score_min is not None:
            parts.append(pc.field("risk_score") >= f.score_min)
        if f.score_max is not None:
            parts.append(pc.field("risk_score") <= f.score_max)
        if not parts:
            return None
        out = parts[0]
        for p in parts[1:]:
            out = out & p
        return out

    def matches(self, f: ViewFilter) -> pa.Table:
        """The META_COLUMNS of every row the filter keeps, in the filter's sort order."""
        self.check(f)
        table = self.judgements.to_table(columns=META_COLUMNS, filter=self._expression(f))
        if f.q:
            hits = self.responses.to_table(
                columns=["response_id"], filter=_match("prompt", f.q) | _match("response", f.q)
            )["response_id"]
            judged = self.judgements.to_table(
                columns=["response_id", "critic_id", "critic_prompt_hash"],
                filter=self._text_match(f.q),
            )
            keep = pc.is_in(table["response_id"], value_set=hits)
            if judged.num_rows:
                keys = pc.binary_join_element_wise(
                    judged["response_id"], judged["critic_id"], judged["critic_prompt_hash"], "\x00"
                )
                mine = pc.binary_join_element_wise(
                    table["response_id"], table["critic_id"], table["critic_prompt_hash"], "\x00"
                )
                keep = pc.or_(keep, pc.is_in(mine, value_set=keys))
            table = table.filter(keep)
        order = "descending" if f.order == "desc" else "ascending"
        keys = [
            (SORTS[f.sort], order, "at_end"),
            ("response_id", "ascending", "at_end"),
            ("critic_id", "ascending", "at_end"),
        ]
        return table.sort_by(keys)

    def _text_match(self, needle: str) -> pc.Expression:
        names_ = set(self.judgements.schema.names)
        exprs = [_match(c, needle) for c in ("rationale", "explanation") if c in names_]
        out = exprs[0]
        for e in exprs[1:]:
            out = out | e
        return out

    def query(self, f: ViewFilter) -> Page:
        """One page of rows for ``f``, each with its prompt, response and critic text."""
        table = self.matches(f)
        offset = (f.page - 1) * f.page_size
        return Page(self.rows(table.slice(offset, f.page_size)), table.num_rows, f.page, f.page_size)

    def rows(self, meta: pa.Table) -> list[dict[str, Any]]:
        """Viewer rows for ``meta`` (a slice of :meth:`matches`): text fetched for these ids only."""
        if meta.num_rows == 0:
            return []
        ids = pc.unique(meta["response_id"])
        only = pc.is_in(pc.field("response_id"), value_set=ids)
        text = self.responses.to_table(columns=["response_id", "prompt", "response"], filter=only).to_pydict()
        by_id = dict(zip(text["response_id"], zip(text["prompt"], text["response"], strict=True), strict=True))
        extra_cols = [c for c in ("rationale", "explanation", "risk_tags") if c in self.judgements.schema.names]
        jt = self.judgements.to_table(
            columns=["response_id", "critic_id", "critic_prompt_hash", *extra_cols], filter=only
        ).to_pylist()
        critic_text = {(r["response_id"], r["critic_id"], r["critic_prompt_hash"]): r for r in jt}
        human = self.human_labels()
        source = f"{SOURCE_PREFIX}{self.run_id}"
        out = []
        for r in meta.to_pylist():
            prompt, response = by_id.get(r["response_id"], ("", ""))
            extra = critic_text.get((r["response_id"], r["critic_id"], r["critic_prompt_hash"]), {})
            out.append(
                {
                    "judgement_id": judgement_id(r["response_id"], r["critic_id"], r["critic_prompt_hash"]),
                    "run_id": self.run_id,
                    "model": r["model"],
                    "lang": r["lang"],
                    "dimension": r["dimension"],
                    "critic_id": r["critic_id"],
                    "risk_score": None if r["risk_score"] is None else round(float(r["risk_score"]), 4),
                    "critic_unsafe": r["unsafe"],
                    "risk_tags": ";".join(extra.get("risk_tags") or []),
                    "rationale": extra.get("rationale") or "",
                    "prompt": prompt,
                    "response": response,
                    LABEL_COLUMN: "",
                    "annotator": "",
                    "note": "",
                    "response_id": r["response_id"],
                    "attack": r["attack"],
                    "set": r["set"],
                    "judge_error": r["judge_error"],
                    "explanation": extra.get("explanation") or "",
                    "human_unsafe": human.get(label_id(source, prompt, response)),
                }
            )
        return out

    def export(self, f: ViewFilter, fmt: Literal["jsonl", "csv"]) -> Iterator[str]:
        """Every row ``f`` keeps (paging ignored), as JSONL lines or a relabel CSV, in batches
        so an export of a large run never holds its text at once."""
        table = self.matches(f)
        if fmt == "csv":
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=[*EXPORT_COLUMNS, "response_id"], extrasaction="ignore")
            writer.writeheader()
            yield buf.getvalue()
        for start in range(0, table.num_rows, EXPORT_BATCH):
            rows = self.rows(table.slice(start, EXPORT_BATCH))
            if fmt == "jsonl":
                yield "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
            else:
                buf = io.StringIO()
                writer = csv.DictWriter(buf, fieldnames=[*EXPORT_COLUMNS, "response_id"], extrasaction="ignore")
                for r in rows:
                    writer.writerow({k: "" if r.get(k) is None else r[k] for k in writer.fieldnames})
                yield buf.getvalue()

    # ---- labels --------------------------------------------------------------------------
    def human_labels(self) -> dict[str, bool]:
        """label_id → the person's label, newest relabel dataset winning (as train/validate read)."""
        if self._human is None:
            from trustflow.tasks.seval.label_sources import load_label_records
            from trustflow.tasks.seval.relabel import relabel_datasets

            spec = f"{SOURCE_PREFIX}{self.run_id}"
            self._human = (
                {r.label_id: r.unsafe for r in load_label_records(spec, store=self.store)}
                if relabel_datasets(self.store, self.run_id)
                else {}
            )
        return self._human

    def relabel(
        self, judgement: str, response_id: str, unsafe: bool, annotator: str, note: str | None = None
    ) -> dict[str, Any]:
        """Store one corrected verdict through the relabel CSV loop (see the module docstring).
        Returns ``{"status": "stored" | "unchanged", "dataset_id", "label_id"}``."""
        who = (annotator or "").strip()
        if not who:
            raise InputError("relabel: annotator is required (who decided this label?)")
        meta = self.judgements.to_table(columns=META_COLUMNS, filter=pc.field("response_id") == response_id)
        found = [
            i
            for i, r in enumerate(meta.to_pylist())
            if judgement_id(r["response_id"], r["critic_id"], r["critic_prompt_hash"]) == judgement
        ]
        if not found:
            raise InputError(
                f"relabel: judgement {judgement!r} of response {response_id!r} is not in run {self.run_id}"
            )
        [row] = self.rows(meta.slice(found[0], 1))
        key = label_id(f"{SOURCE_PREFIX}{self.run_id}", row["prompt"], row["response"])
        current = self.human_labels().get(key)
        if current is unsafe:
            return {"status": "unchanged", "dataset_id": None, "label_id": key}
        # ``supersedes`` makes a flip back to an earlier label a new file (hence a newer
        # dataset that wins), while the same post twice stays the same file (a no-op)
        supersedes = "" if current is None else ("unsafe" if current else "safe")
        fields = ["judgement_id", "response_id", "run_id", LABEL_COLUMN, "annotator", "note", "supersedes"]
        values = [judgement, response_id, self.run_id, "unsafe" if unsafe else "safe", who, note or "", supersedes]
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(fields)
        writer.writerow(values)
        with tempfile.TemporaryDirectory(prefix="trustflow-view-") as tmp:
            path = Path(tmp) / f"viewer-{judgement}.csv"
            path.write_text(buf.getvalue(), encoding="utf-8")
            info = import_relabels(self.store, path, annotator=who, run_id=self.run_id)
        self._human = None
        return {"status": "unchanged" if info.skipped else "stored", "dataset_id": info.dataset_id, "label_id": key}


def open_run(store: ArtifactStore, run_id: str) -> RunView:
    """Open a run's judgements and responses; an unknown run or one not judged yet is an
    :class:`InputError` naming it (raised before any server starts)."""
    jref = StageRef(names.SEVAL_EVALUATE, run_id, names.JUDGEMENTS)
    rref = StageRef(names.SEVAL_EVALUATE, run_id, names.RESPONSES)
    if store.manifest(jref) is None or store.manifest(rref) is None:
        what = "no judgements" if store.manifest(rref) is not None else "no responses"
        raise InputError(f"run {run_id!r}: {what} in {store.url} (an S-Eval run id; see `trustflow runs ls`)")
    judgements = store.dataset(jref)
    responses = store.dataset(rref)
    facet_table = judgements.to_table(columns=list(FACETS))
    facets = {name: sorted(v for v in pc.unique(facet_table[name]).to_pylist() if v is not None) for name in FACETS}
    return RunView(store, run_id, judgements, responses, facets)
