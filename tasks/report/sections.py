"""What a report shows for each flow: one renderer per flow name, plus a generic fallback.

Two registries, both keyed by the flow name the store uses (``runs/<flow>/…``):

- ``RUN_SECTIONS``: ``RunView → [Section]`` for the page of one run;
- ``BOARD_SECTIONS``: ``[RunView] → [Section]`` for the flow's part of the combined
  leaderboard page (every run of that flow in the store).

A flow's renderers live in its domain's ``tasks/<domain>/report.py``, registered with
``@RUN_SECTIONS.register(names.<FLOW>)`` / ``@BOARD_SECTIONS.register(names.<FLOW>)``; both
registries import every ``trustflow.tasks.*.report`` module on their first lookup, so a new
pipeline's report is that one file. A flow without a renderer still gets a useful page (its
stages and their first rows). This module holds what every renderer shares: ``RunView``,
the table helpers and the generic sections. Renderers check
each stage's schema name and version before trusting its columns, so a stage written by an
older or newer layout falls back to the generic listing instead of breaking the page.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from trustflow import names
from trustflow.data import schemas as S
from trustflow.data.store import ArtifactStore, Manifest, StageRef
from trustflow.registry import Registry
from trustflow.tasks.report.html import (
    EMPTY,
    Column,
    Html,
    Section,
    fmt,
    fmt_bytes,
    heading,
    image_png,
    join,
    note,
    stacked,
    table,
    truncate,
)

PREVIEW_ROWS = 5


# ---------------------------------------------------------------- the data a renderer sees


@dataclass
class RunView:
    """One run's complete stages (those with a manifest) and its side files (plots, models)."""

    store: ArtifactStore
    flow: str
    run_id: str
    stages: dict[str, Manifest]

    @property
    def label(self) -> str:
        return f"{self.flow}/{self.run_id}"

    @property
    def written(self) -> datetime | None:
        return max((m.created_at for m in self.stages.values()), default=None)

    def has(self, stage: str, schema: S.VersionedSchema | None = None) -> bool:
        """The stage is complete (and, given ``schema``, written with that name and version)."""
        m = self.stages.get(stage)
        if m is None:
            return False
        return schema is None or (m.schema_name == schema.name and m.schema_version == schema.version)

    def ref(self, stage: str) -> StageRef:
        return StageRef(self.flow, self.run_id, stage)

    def read(self, stage: str, columns: list[str] | None = None) -> pa.Table:
        return self.store.read_table(self.ref(stage), columns=columns)

    def rows(self, stage: str, columns: list[str] | None = None) -> list[dict[str, Any]]:
        return self.read(stage, columns).to_pylist()

    def head(self, stage: str, n: int = PREVIEW_ROWS, columns: list[str] | None = None) -> list[dict[str, Any]]:
        return self.store.dataset(self.ref(stage)).head(n, columns=columns).to_pylist()

    def attrs(self, stage: str) -> dict[str, Any]:
        """The stage's manifest attrs without internal (``_``) keys."""
        m = self.stages.get(stage)
        return {k: v for k, v in (m.attrs if m else {}).items() if not k.startswith("_")}

    def files(self, folder: str) -> list[tuple[str, int]]:
        """(name, size) of the finished files in ``runs/<flow>/<run_id>/<folder>/``."""
        selector = pafs.FileSelector(self.store.path("runs", self.flow, self.run_id, folder), allow_not_found=True)
        try:
            infos = self.store.fs.get_file_info(selector)
        except FileNotFoundError:
            return []
        return sorted(
            (i.base_name, i.size or 0)
            for i in infos
            if i.type == pafs.FileType.File and not i.base_name.startswith(".")
        )

    def plots(self) -> list[tuple[str, bytes]]:
        return [
            (name, self.store.read_bytes(self.store.path("runs", self.flow, self.run_id, "plots", name)))
            for name, _ in self.files("plots")
            if name.lower().endswith(".png")
        ]


REPORT_PLUGINS = "trustflow.tasks.*.report"
SectionRenderer = Callable[[RunView], list[Section]]
BoardRenderer = Callable[[list[RunView]], list[Section]]

# each domain's renderers live in ``tasks/<domain>/report.py``, found on the first lookup
RUN_SECTIONS: Registry[SectionRenderer] = Registry("run report section", plugins=REPORT_PLUGINS)
BOARD_SECTIONS: Registry[BoardRenderer] = Registry("leaderboard section", plugins=REPORT_PLUGINS)


def run_sections(run: RunView) -> list[Section]:
    """The flow's own sections, or the generic listing for a flow without a renderer."""
    render = RUN_SECTIONS.get(run.flow) if run.flow in RUN_SECTIONS else generic_sections
    return render(run)


# ---------------------------------------------------------------- shared pieces

PCT = ".1f"  # S-Eval rates are percentages
ACC = ".3f"  # accuracies and mAP are fractions


def ap(value: Any) -> str:
    """COCO writes -1 where a size bucket has no ground truth."""
    return "n/a" if value is None or value < 0 else f"{value:.3f}"


def ci(low: Any, high: Any, spec: str = PCT) -> str:
    if low is None or high is None:
        return EMPTY
    return f"{low:{spec}}–{high:{spec}}"


def pivot(
    rows: Iterable[Mapping[str, Any]], index: str, column: str, value: str
) -> tuple[list[dict[str, Any]], list[Any]]:
    """Long rows → one row per ``index`` with one key per ``column`` value (first-seen order)."""
    out: dict[Any, dict[str, Any]] = {}
    seen: list[Any] = []
    for r in rows:
        key, col = r[index], r[column]
        if col not in seen:
            seen.append(col)
        out.setdefault(key, {index: key})[f"c:{col}"] = r[value]
    return list(out.values()), seen


def run_cell(run_id: str, written: datetime) -> Html:
    """A run id with the day it was written underneath (saves a column on wide tables)."""
    return stacked(run_id, written.strftime("%Y-%m-%d"))


def pivot_columns(
    values: Sequence[Any], spec: str | Callable[[Any], str] | None, label: Callable[[Any], str] = str
) -> list[Column]:
    return [Column(f"c:{v}", label(v), spec, numeric=True) for v in values]


def plots_section(run: RunView, captions: Mapping[str, str] | None = None) -> list[Section]:
    """Every PNG under the run's ``plots/``, the known ones first with their captions."""
    captions = captions or {}
    order = list(captions)
    plots = sorted(run.plots(), key=lambda p: (order.index(p[0]) if p[0] in captions else len(order), p[0]))
    if not plots:
        return []
    return [Section("Plots", join(image_png(data, alt=name, caption=captions.get(name, name)) for name, data in plots))]


def per_run_boards(
    runs: Sequence[RunView],
    schema: S.VersionedSchema,
    title: str,
    empty: str,
    render: Callable[[RunView], tuple[str | None, Html]],
    stage: str = names.LEADERBOARD,
) -> list[Section]:
    """One section: a heading and the board of each run whose ``stage`` (its leaderboard by
    default) has ``schema``, newest first (each run's inputs differ, so boards are not merged).
    ``render`` gives the heading's middle part (e.g. the dataset; None for none) and the run's table."""
    boards = sorted(
        (r for r in runs if r.has(stage, schema)),
        key=lambda r: r.stages[stage].created_at,
        reverse=True,
    )
    body: list[Html] = []
    for run in boards:
        label, board = render(run)
        parts = [run.run_id, *([label] if label else []), fmt(run.stages[stage].created_at)]
        body += [heading(3, " · ".join(parts)), board]
    return [Section(title, join(body) if body else note(empty))]


def stages_section(run: RunView) -> list[Section]:
    """What the store holds for the run: each stage's manifest, then its side files."""
    rows = []
    for name, m in sorted(run.stages.items()):
        rows.append(
            {
                "stage": name,
                "schema": f"{m.schema_name} v{m.schema_version}",
                "rows": m.rows,
                "parts": len(m.parts),
                "size": fmt_bytes(sum(p.bytes for p in m.parts)),
                "written": m.created_at,
                "version": m.trustflow_version or EMPTY,
                "keys": ", ".join(m.key_columns),
                "attrs": run.attrs(name) or None,
            }
        )
    body = [
        table(
            rows,
            [
                Column("stage"),
                Column("schema"),
                Column("rows"),
                Column("parts"),
                Column("size", numeric=True),
                Column("written"),
                Column("version", "trustflow"),
                Column("keys", "key columns"),
                Column("attrs"),
            ],
            empty="no complete stage (no manifest written yet)",
        )
    ]
    files = [
        {"file": f"{folder}/{name}", "size": fmt_bytes(size)}
        for folder in ("plots", "model")
        for name, size in run.files(folder)
    ]
    if files:
        body += [heading(3, "Other files"), table(files, [Column("file"), Column("size", numeric=True)])]
    return [Section("Stages and manifests", join(body))]


def preview(run: RunView, stage: str, n: int = PREVIEW_ROWS, columns: list[str] | None = None) -> Html:
    m = run.stages[stage]
    rows = run.head(stage, n, columns)
    caption = f"first {min(n, m.rows)} of {m.rows:,} rows · {m.schema_name} v{m.schema_version}"
    return table(rows, caption=caption, empty="empty stage")


def generic_sections(run: RunView) -> list[Section]:
    """Any flow: each stage's first rows, and its plots."""
    body = []
    for name in sorted(run.stages):
        body += [heading(3, name), preview(run, name)]
    sections = [Section("Stages", join(body) if body else note("no complete stage"))]
    return sections + plots_section(run)


def unknown_stages(run: RunView, known: Mapping[str, S.VersionedSchema]) -> list[Section]:
    """Stages a renderer does not show (other names, or another schema version): previewed."""
    others = [s for s in sorted(run.stages) if s not in known or not run.has(s, known[s])]
    if not others:
        return []
    body: list[Html] = []
    for name in others:
        body += [heading(3, name), preview(run, name)]
    return [Section("Other stages", join(body))]


def attr_pairs(attrs: Mapping[str, Any], limit: int = 200) -> list[tuple[str, Any]]:
    return [(k, truncate(fmt(v), limit) if not isinstance(v, (int, float)) else v) for k, v in attrs.items()]
