"""Report sections of the ASR flows: an evaluation's page (WER per domain, the leaderboard with
intervals, reference vs hypothesis transcripts, the plot), its part of the combined leaderboard,
and a training run's page. The numbers are the stored stages (no second computation)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from trustflow import names
from trustflow.data import schemas as S
from trustflow.tasks.asr.stages import OOD_MEAN, WER_PNG, pivot
from trustflow.tasks.report.html import EMPTY, Column, Html, Section, join, key_figures, note, table
from trustflow.tasks.report.sections import (
    BOARD_SECTIONS,
    RUN_SECTIONS,
    RunView,
    ci,
    per_run_boards,
    plots_section,
    unknown_stages,
)

EVAL_STAGES = {names.RESULTS: S.ASR_RESULTS, names.LEADERBOARD: S.ASR_LEADERBOARD}
TRAIN_STAGES = {names.EPOCHS: S.ASR_TRAIN_EPOCHS}
ASR_PLOTS = {WER_PNG: "Word error rate per domain, a bar per method (95 % bootstrap intervals)"}
EXAMPLE_COLUMNS = ["domain", "utt_id", "reference", "hypothesis", "word_errors", "model", "method"]
ABOUT = (
    "WER (%) = word edits / reference words over a domain's utterances (corpus level); PER the same on phones. "
    "A domain is a dataset's own domain (clean) or it plus a shift; out-of-domain = every shifted or real "
    "domain, ood-mean their unweighted mean. Intervals: 95 % percentile bootstrap over utterances; "
    "RTF = decode seconds / audio seconds."
)


def percent(value: float) -> str:
    return f"{100 * value:.1f}"


def wer_table(board: Sequence[Mapping[str, Any]]) -> Html:
    """WER (%) with a row per model and a column per domain (in-domain first, ood-mean last)."""
    domains, rows = pivot(board)
    columns = [Column("method"), Column("model")]
    columns += [Column(d, d.replace("?", " "), percent, numeric=True) for d in domains]
    return table(rows, columns)


def board_rows(board: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    def pct(v: Any) -> Any:
        return None if v is None else 100 * v

    return [{**b, "wer_ci": ci(pct(b["wer_lo"]), pct(b["wer_hi"]), ".1f")} for b in board]


BOARD_COLUMNS = [
    Column("method"),
    Column("model"),
    Column("domain"),
    Column("ood", "out of domain"),
    Column("utterances"),
    Column("wer", "WER %", percent, numeric=True),
    Column("wer_ci", "95 % interval", numeric=True),
    Column("per", "PER %", percent, numeric=True),
    Column("rtf", "RTF", ".3f"),
]


def pick_examples(rows: Sequence[Mapping[str, Any]], per_domain: int = 2) -> list[dict[str, Any]]:
    """The same few utterances for every model: per domain the first ``per_domain`` utterance ids
    (sorted), each with every model's hypothesis, so methods compare on identical audio."""
    chosen: dict[str, list[str]] = {}
    for r in sorted(rows, key=lambda r: (r["domain"], r["utt_id"])):
        ids = chosen.setdefault(r["domain"], [])
        if r["utt_id"] not in ids and len(ids) < per_domain:
            ids.append(r["utt_id"])
    keep = {(d, u) for d, ids in chosen.items() for u in ids}
    return sorted(
        (dict(r) for r in rows if (r["domain"], r["utt_id"]) in keep),
        key=lambda r: (r["domain"], r["utt_id"], r["method"], r["model"]),
    )


@RUN_SECTIONS.register(names.ASR_EVALUATE)
def asr_sections(run: RunView) -> list[Section]:
    """Key figures, WER per domain, the leaderboard, example transcripts, the plot."""
    sections: list[Section] = []
    if run.has(names.LEADERBOARD, S.ASR_LEADERBOARD):
        board = run.rows(names.LEADERBOARD)
        ood = [b for b in board if b["domain"] == OOD_MEAN and b["wer"] is not None]
        best = min(ood, key=lambda b: b["wer"], default=None)
        figures: list[tuple[str, Any, str]] = [
            ("Models", len({b["model"] for b in board}), ", ".join(sorted({b["method"] for b in board}))),
            ("Domains", len({b["domain"] for b in board if b["domain"] != OOD_MEAN}), ""),
        ]
        if best:
            figures.append(("Best OOD-mean WER", f"{percent(best['wer'])} %", best["method"]))
        body: list[Html] = [key_figures(figures), note(ABOUT), wer_table(board)]
        sections.append(Section("Speech recognition under domain shifts", join(body)))
        sections.append(Section("Leaderboard", table(board_rows(board), BOARD_COLUMNS)))
    if run.has(names.RESULTS, S.ASR_RESULTS):
        rows = run.rows(names.RESULTS, EXAMPLE_COLUMNS)
        body = [
            note("Reference vs hypothesis (lexicon-decoded words) of the same utterances for every model."),
            table(pick_examples(rows), [Column(c, c.replace("_", " ")) for c in EXAMPLE_COLUMNS]),
        ]
        sections.append(Section("Example transcripts", join(body)))
    return sections + plots_section(run, ASR_PLOTS) + unknown_stages(run, EVAL_STAGES)


@BOARD_SECTIONS.register(names.ASR_EVALUATE)
def asr_board(runs: list[RunView]) -> list[Section]:
    """Each evaluation's WER-per-domain table, newest first (models and datasets differ per run)."""
    return per_run_boards(
        runs,
        S.ASR_LEADERBOARD,
        names.FLOW_TITLES[names.ASR_EVALUATE],
        "no speech recognition evaluation in this store",
        lambda run: (None, wer_table(run.rows(names.LEADERBOARD))),
    )


@RUN_SECTIONS.register(names.ASR_TRAIN)
def training_sections(run: RunView) -> list[Section]:
    """The run's job and its per-epoch losses."""
    if not run.has(names.EPOCHS, S.ASR_TRAIN_EPOCHS):
        return unknown_stages(run, TRAIN_STAGES)
    summary = run.attrs(names.EPOCHS).get("summary", {})
    rows = [{**r, **{f"loss:{k}": v for k, v in json.loads(r["losses"]).items()}} for r in run.rows(names.EPOCHS)]
    losses = sorted({k for r in rows for k in r if k.startswith("loss:")})
    figures: list[tuple[str, Any, str]] = [
        ("Method", summary.get("method", EMPTY), summary.get("model", "")),
        ("Dataset", summary.get("dataset", EMPTY), f"{summary.get('train_rows', '?')} utterances"),
        (
            "Utterances/s",
            f"{float(summary.get('utterances_per_s', 0.0)):.1f}",
            f"{summary.get('workers', '?')} Ray Train workers",
        ),
    ]
    columns = [Column("epoch"), *[Column(k, k.removeprefix("loss:"), ".4f") for k in losses]]
    return [
        Section(names.FLOW_TITLES[names.ASR_TRAIN], join([key_figures(figures), table(rows, columns)]))
    ] + unknown_stages(run, TRAIN_STAGES)
