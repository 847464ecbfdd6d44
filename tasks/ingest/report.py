"""The ingested dataset's page in ``trustflow report``: its tables, source and attributes."""

from __future__ import annotations

from trustflow import names
from trustflow.data import schemas as S
from trustflow.tasks.report.html import EMPTY, Column, Section, definitions, heading, join, key_figures, table
from trustflow.tasks.report.sections import RUN_SECTIONS, RunView, attr_pairs, generic_sections


@RUN_SECTIONS.register(names.INGEST)
def ingest_sections(run: RunView) -> list[Section]:
    """The dataset's tables with their row counts, where it came from, its domains/splits/classes."""
    if not run.has(names.SUMMARY, S.DATASET_SUMMARY):
        return generic_sections(run)
    attrs = run.attrs(names.SUMMARY)
    figures = [
        ("Kind", attrs.get("kind", EMPTY)),
        ("Tables", run.stages[names.SUMMARY].rows),
        ("Rows", sum(m.rows for name, m in run.stages.items() if name != names.SUMMARY)),
    ]
    body = [
        key_figures(figures),
        definitions(attr_pairs(attrs)),
        table(
            run.rows(names.SUMMARY),
            [Column("table"), Column("rows"), Column("schema_name", "schema"), Column("schema_version", "version")],
        ),
    ]
    for name in sorted(run.stages):
        extra = run.attrs(name) if name != names.SUMMARY else {}
        if extra:
            body += [heading(3, name), definitions(attr_pairs(extra))]
    return [Section("Dataset", join(body))]
