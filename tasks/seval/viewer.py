"""Triage viewer queries: filter, sort, page and export an S-Eval run's verdicts, and relabel one.

A run can hold hundreds of thousands of verdicts, so a page never carries more than its own
rows: the run's columns are read from its Parquet parts once when it is opened (see
:class:`RunView` for why), every query is an Arrow expression over the small columns
(model, language, dimension, attack, verdict, score, judge error), the survivors are sorted
and sliced, and only the page's rows take their prompt, response and rationale text.
Free-text search is one ``match_substring`` pass over the text columns.

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

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from trustflow import names
from trustflow.data.schemas import SEVAL_JUDGEMENTS
from trustflow.data.seval.labels import label_id
from trustflow.data.store import ArtifactStore, StageRef
from trustflow.errors import InputError
from trustflow.tasks.seval.judging import judgement_id
from trustflow.tasks.seval.relabel import EXPORT_COLUMNS, LABEL_COLUMN, SOURCE_PREFIX, import_relabels

FACETS = ("model", "lang", "dimension", "attack", "critic_id")  # one value per row
TAG = "tag"  # a risk tag (taxonomy leaf) among an unsafe verdict's ``risk_tags``
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
CRITIC_TEXT = ("rationale", "explanation", "risk_tags")  # read with a page, searched by ``q``
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
    tag: str | None = None  # risk tag (taxonomy leaf id) of unsafe verdicts
    verdict: Literal["unsafe", "safe", "error"] | None = None
    score_min: float | None = Field(default=None, ge=0.0, le=1.0)
    score_max: float | None = Field(default=None, ge=0.0, le=1.0)
    judge_error: bool | None = None
    q: str | None = Field(default=None, max_length=MAX_QUERY_CHARS)
    sort: Literal["risk", "model", "lang", "dimension", "attack"] = "risk"
    order: Literal["desc", "asc"] = "desc"
    page: int = Field(default=1, ge=1)
    page_size: int = Field(default=50, ge=1, le=MAX_PAGE_SIZE)

    @field_validator("model", "lang", "dimension", "attack", "critic_id", "tag", "q", "verdict", mode="before")
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


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A CSV cell that a spreadsheet will not run: attacker text starting like a formula
    (``=HYPERLINK(…)``) gets a leading apostrophe. Relabelling is unaffected: a row with a
    judgement id takes its text from the store, not from the cell."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _any_match(table: pa.Table, columns: list[str], needle: str) -> pa.ChunkedArray | pa.Array:
    """Per row: does any of ``columns`` contain ``needle`` (case-insensitive; null is no)."""
    out: pa.ChunkedArray | pa.Array | None = None
    for c in columns:
        hit = pc.fill_null(pc.match_substring(table[c], needle, ignore_case=True), False)
        out = hit if out is None else pc.or_(out, hit)
    return out if out is not None else pa.array([False] * table.num_rows)


@dataclass
class RunView:
    """A run opened for viewing, held as three aligned Arrow tables read once from its parts:

    - ``meta``: the small columns every query filters and sorts on (META_COLUMNS), plus
      ``_i`` (its own row number) and ``_t`` (the row of its response in ``text``);
    - ``critic_text``: rationale, explanation and risk tags, row for row with ``meta``;
    - ``text``: each response's prompt and answer.

    A query filters ``meta`` (an Arrow expression), sorts the survivors and takes only the
    page's rows from the text tables, so a page costs the same on a 220,000-row run as on a
    small one; free-text search is one ``match_substring`` pass over the text columns.
    Reading the parts once at open (about 0.7 KB of memory per verdict) is what keeps each
    query well under a second: a run's parts hold one row group each, so fetching a page's
    text from Parquet per query would decompress every part's text columns every time.
    ``facets`` are the distinct values of each facet (menus, and the check of a filter value)."""

    store: ArtifactStore
    run_id: str
    meta: pa.Table
    critic_text: pa.Table
    text: pa.Table
    facets: dict[str, list[str]]
    _human: dict[str, tuple[bool, str]] | None = field(default=None, repr=False)

    # ---- queries -------------------------------------------------------------------------
    def check(self, f: ViewFilter) -> None:
        """A facet value no row of the run has is a typo, not an empty result: say so."""
        for name in (*FACETS, TAG):
            value = getattr(f, name)
            known = self.facets[name]
            if value is None or value in known or (name == "attack" and value == NO_ATTACK):
                continue
            shown = ", ".join(known[:20]) + (" …" if len(known) > 20 else "")
            raise InputError(f"filter {name}={value!r}: no row of run {self.run_id} has it; known: {shown}")
        if f.score_min is not None and f.score_max is not None and f.score_min > f.score_max:
            raise InputError(f"filter score_min={f.score_min} is above score_max={f.score_max}")

    @staticmethod
    def _expression(f: ViewFilter) -> pc.Expression | None:
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
        """The ``meta`` rows the filter keeps, in the filter's sort order."""
        self.check(f)
        expr = self._expression(f)
        table = self.meta if expr is None else self.meta.filter(expr)
        if f.q:
            in_text = _any_match(self.text, ["prompt", "response"], f.q)
            in_critic = _any_match(self.critic_text, ["rationale", "explanation"], f.q)
            keep = pc.or_(pc.fill_null(pc.take(in_text, table["_t"]), False), pc.take(in_critic, table["_i"]))
            table = table.filter(keep)
        if f.tag:
            tags = self.critic_text["risk_tags"].combine_chunks()
            tagged = pc.filter(pc.list_parent_indices(tags), pc.equal(pc.list_flatten(tags), f.tag))
            mask = np.zeros(self.meta.num_rows, dtype=bool)
            mask[tagged.to_numpy()] = True
            table = table.filter(pc.take(pa.array(mask), table["_i"]))
        order = "descending" if f.order == "desc" else "ascending"
        keys = [
            (SORTS[f.sort], order, "at_end"),
            ("response_id", "ascending", "at_end"),
            ("critic_id", "ascending", "at_end"),
        ]
        return table.sort_by(keys)

    def query(self, f: ViewFilter) -> Page:
        """One page of rows for ``f``, each with its prompt, response and critic text."""
        table = self.matches(f)
        offset = (f.page - 1) * f.page_size
        return Page(self.rows(table.slice(offset, f.page_size)), table.num_rows, f.page, f.page_size)

    def rows(self, meta: pa.Table) -> list[dict[str, Any]]:
        """Viewer rows for ``meta`` (a slice of :meth:`matches`): text taken for these rows only."""
        if meta.num_rows == 0:
            return []
        text = self.text.take(meta["_t"]).to_pydict()
        critic = self.critic_text.take(meta["_i"]).to_pylist()
        human = self.human_labels()
        source = f"{SOURCE_PREFIX}{self.run_id}"
        out = []
        for k, r in enumerate(meta.to_pylist()):
            prompt, response = text["prompt"][k] or "", text["response"][k] or ""
            extra = critic[k]
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
                    "human_unsafe": human.get(label_id(source, prompt, response), (None, ""))[0],
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
                    writer.writerow({k: csv_cell(r.get(k)) for k in writer.fieldnames})
                yield buf.getvalue()

    # ---- labels --------------------------------------------------------------------------
    def human_labels(self) -> dict[str, tuple[bool, str]]:
        """label_id → (the person's label, the dataset it came from), the newest relabel
        dataset of the run winning per pair: the order ``--labels relabel:<run>`` reads them."""
        if self._human is None:
            from trustflow.tasks.ingest.common import stage_ref
            from trustflow.tasks.seval.relabel import relabel_datasets

            human: dict[str, tuple[bool, str]] = {}
            for info in relabel_datasets(self.store, self.run_id):  # oldest first
                t = self.store.read_table(stage_ref(info.dataset_id, names.LABELS), columns=["label_id", "unsafe"])
                for key, unsafe in zip(t["label_id"].to_pylist(), t["unsafe"].to_pylist(), strict=True):
                    human[key] = (bool(unsafe), info.dataset_id)
            self._human = human
        return self._human

    def relabel(
        self, judgement: str, response_id: str, unsafe: bool, annotator: str, note: str | None = None
    ) -> dict[str, Any]:
        """Store one corrected verdict through the relabel CSV loop (see the module docstring).
        Returns ``{"status": "stored" | "unchanged", "dataset_id", "label_id"}``."""
        who = (annotator or "").strip()
        if not who:
            raise InputError("relabel: annotator is required (who decided this label?)")
        meta = self.meta.filter(pc.field("response_id") == response_id)
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
        if current is not None and current[0] is unsafe:
            return {"status": "unchanged", "dataset_id": current[1], "label_id": key}
        # ``supersedes`` names the dataset whose label this one replaces: a flip back to an
        # earlier label is then a new file (a newer dataset, which wins), while the same
        # post twice is the same file (a no-op)
        supersedes = "" if current is None else current[1]
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
    """Open a run's judgements and responses (read once, see :class:`RunView`); an unknown
    run or one not judged yet is an :class:`InputError` naming it (raised before any server
    starts)."""
    jref = StageRef(names.SEVAL_EVALUATE, run_id, names.JUDGEMENTS)
    rref = StageRef(names.SEVAL_EVALUATE, run_id, names.RESPONSES)
    if store.manifest(jref) is None or store.manifest(rref) is None:
        what = "no judgements" if store.manifest(rref) is not None else "no responses"
        raise InputError(f"run {run_id!r}: {what} in {store.url} (an S-Eval run id; see `trustflow runs ls`)")
    judgements = store.dataset(jref)
    present = set(judgements.schema.names)
    wanted = META_COLUMNS + [c for c in CRITIC_TEXT if c in present]  # a v1 stage has no rationale
    judged = judgements.to_table(columns=wanted)
    for c in CRITIC_TEXT:
        if c not in present:
            judged = judged.append_column(c, pa.nulls(judged.num_rows, SEVAL_JUDGEMENTS.schema.field(c).type))
    text = store.dataset(rref).to_table(columns=["response_id", "prompt", "response"])
    meta = judged.select(META_COLUMNS)
    meta = meta.append_column("_i", pa.array(range(meta.num_rows), pa.int64()))
    meta = meta.append_column("_t", pc.index_in(meta["response_id"], value_set=text["response_id"]))
    facets = {name: sorted(v for v in pc.unique(meta[name]).to_pylist() if v is not None) for name in FACETS}
    tags = pc.list_flatten(judged["risk_tags"])
    facets[TAG] = sorted(v for v in pc.unique(tags).to_pylist() if v is not None)
    return RunView(store, run_id, meta.combine_chunks(), judged.select(list(CRITIC_TEXT)), text, facets)
