"""The report sections of ``detector_evaluate``: one run's page and its part of the leaderboard page.

The leaderboard rows are the ``detector_leaderboard`` stage as ``scoring.leaderboard`` wrote
it (no second computation), titled with ``scoring.BOARD_LABELS`` like the CLI and the
Prefect summary.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from trustflow import names
from trustflow.data import schemas as S
from trustflow.tasks.detection.scoring import BOARD_LABELS
from trustflow.tasks.report.html import EMPTY, Column, Html, Section, heading, join, key_figures, note, table
from trustflow.tasks.report.sections import (
    ACC,
    BOARD_SECTIONS,
    RUN_SECTIONS,
    RunView,
    ap,
    per_run_boards,
    pivot,
    pivot_columns,
    plots_section,
    unknown_stages,
)

DETECTOR_STAGES = {
    names.METRICS: S.DETECTION_METRICS,
    names.LEADERBOARD: S.DETECTOR_LEADERBOARD,
    names.DETECTIONS: S.DETECTIONS,
}
DETECTOR_PLOTS = {
    "id_vs_ood.png": "OOD vs ID mAP per detector; the dashed line is the trend OOD = a + b·ID",
    "per_domain.png": "AP per domain",
}
_BOARD_FORMATS = {
    "id_map": ACC,
    "ood_map": ACC,
    "relative_drop": ".1%",
    "effective_robustness": "+.3f",
    "images_per_s": ".1f",
}
DETECTOR_BOARD_COLUMNS = [Column(key, BOARD_LABELS[key], _BOARD_FORMATS.get(key)) for key in BOARD_LABELS]
_METRIC_COLUMNS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100")


def detector_board_rows(run: RunView) -> list[dict[str, Any]]:
    return sorted(run.rows(names.LEADERBOARD), key=lambda r: -r["ood_map"])


@RUN_SECTIONS.register(names.DETECTOR_EVALUATE)
def detector_sections(run: RunView) -> list[Section]:
    """ID/OOD leaderboard with effective robustness, AP per domain, full COCO numbers, inference."""
    sections: list[Section] = []
    if run.has(names.LEADERBOARD, S.DETECTOR_LEADERBOARD):
        board = detector_board_rows(run)
        attrs = run.attrs(names.LEADERBOARD)
        figures: list[tuple[str, Any, str]] = [  # an empty hint shows none
            ("Dataset", attrs.get("dataset_id", EMPTY), ""),
            ("Detectors", len(board), ""),
        ]
        if board:
            top = board[0]
            figures.append((f"Best {BOARD_LABELS['ood_map']}", f"{top['ood_map']:{ACC}}", top["detector"]))
            figures.append(("Trend", f"{top['trend_a']:.3f} + {top['trend_b']:.3f}·ID", top["trend"]))
        body = [key_figures(figures), table(board, DETECTOR_BOARD_COLUMNS)]
        sections.append(Section("Leaderboard", join(body)))
    if run.has(names.METRICS, S.DETECTION_METRICS):
        metrics = run.rows(names.METRICS)
        rows, domains = pivot(metrics, "detector", "domain", "AP")
        per_domain = table(rows, [Column("detector"), *pivot_columns(domains, ap)])
        cols = [
            Column("detector"),
            Column("domain"),
            *[Column(k, spec=ap, numeric=True) for k in _METRIC_COLUMNS],
            Column("images"),
            Column("annotations"),
            Column("detections"),
        ]
        body = [
            note("AP at IoU 0.50:0.95 per domain (n/a: no ground truth for the bucket)."),
            per_domain,
            heading(3, "COCO metrics"),
            table(metrics, cols),
        ]
        sections.append(Section("Per-domain metrics", join(body)))
    if run.has(names.DETECTIONS, S.DETECTIONS):
        sections.append(Section("Inference", inference_table(run)))
    return sections + plots_section(run, DETECTOR_PLOTS) + unknown_stages(run, DETECTOR_STAGES)


def inference_table(run: RunView) -> Html:
    """Per detector and domain: images, boxes found, mean score, time per image."""
    t = run.read(names.DETECTIONS, ["detector", "domain", "scores", "seconds"])
    t = t.append_column("boxes", pc.list_value_length(t["scores"]).cast(pa.int64()))
    owner = pc.list_parent_indices(t["scores"])
    flat = pa.table(
        {
            "detector": pc.take(t["detector"], owner),
            "domain": pc.take(t["domain"], owner),
            "score": pc.list_flatten(t["scores"]),
        }
    )
    mean_score = {
        (r["detector"], r["domain"]): r["score_mean"]
        for r in flat.group_by(["detector", "domain"]).aggregate([("score", "mean")]).to_pylist()
    }
    grouped = t.group_by(["detector", "domain"]).aggregate(
        [("boxes", "sum"), ("seconds", "mean"), ("seconds", "count")]
    )
    rows = []
    for r in grouped.to_pylist():
        boxes = r["boxes_sum"]
        rows.append(
            {
                "detector": r["detector"],
                "domain": r["domain"],
                "images": r["seconds_count"],
                "boxes": boxes,
                "score": mean_score.get((r["detector"], r["domain"])),
                "ms": r["seconds_mean"] * 1000,
            }
        )
    rows.sort(key=lambda r: (r["detector"], r["domain"]))
    return table(
        rows,
        [
            Column("detector"),
            Column("domain"),
            Column("images"),
            Column("boxes", "detections"),
            Column("score", "mean score", ".3f"),
            Column("ms", "ms / image", ".1f"),
        ],
    )


@BOARD_SECTIONS.register(names.DETECTOR_EVALUATE)
def detector_board(runs: list[RunView]) -> list[Section]:
    """Each detector evaluation's leaderboard, newest first (datasets and domains differ per run)."""
    return per_run_boards(
        runs,
        S.DETECTOR_LEADERBOARD,
        "Detector robustness leaderboards",
        "no detector evaluation in this store",
        lambda run: (
            f"dataset {run.attrs(names.LEADERBOARD).get('dataset_id', EMPTY)}",
            table(detector_board_rows(run), DETECTOR_BOARD_COLUMNS),
        ),
    )
