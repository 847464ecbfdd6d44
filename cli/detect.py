"""``trustflow detect eval`` and ``trustflow detect score``: detector robustness, COCO-O style."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from trustflow.cli.common import bootstrap, console, emit_json, flow_session, handle_errors

detect_app = typer.Typer(no_args_is_help=True, help="Object detector robustness (COCO-O style) and COCO scoring.")


BOARD_COLUMNS = ("detector", "id_map", "ood_map", "relative_drop", "effective_robustness", "images_per_s")


def print_leaderboard(board: list[dict[str, Any]], title: str) -> None:
    from trustflow.cli.tables import board_table
    from trustflow.tasks.detection.scoring import BOARD_LABELS

    body = [
        [
            r["detector"],
            f"{r['id_map']:.3f}",
            f"{r['ood_map']:.3f}",
            "-" if r["relative_drop"] is None else f"{100 * r['relative_drop']:.1f} %",
            f"{r['effective_robustness']:+.3f}",
            "-" if r["images_per_s"] is None else f"{r['images_per_s']:.1f}",
        ]
        for r in board
    ]
    console.print(board_table(title, [BOARD_LABELS[col] for col in BOARD_COLUMNS], body))


def print_domain_table(metrics: list[dict[str, Any]], id_domain: str) -> None:
    detectors = sorted({m["detector"] for m in metrics})
    domains = sorted({m["domain"] for m in metrics}, key=lambda d: (d != id_domain, d))
    ap = {(m["detector"], m["domain"]): m["AP"] for m in metrics}
    table = Table(title="AP@[.50:.95] per domain")
    table.add_column("domain")
    for d in detectors:
        table.add_column(d, justify="right")
    for dom in domains:
        table.add_row(
            f"{dom} (ID)" if dom == id_domain else dom, *[f"{ap.get((d, dom), float('nan')):.3f}" for d in detectors]
        )
    console.print(table)


@detect_app.command("eval")
@handle_errors
def eval_cmd(
    detectors: str = typer.Option(
        ..., "--detectors", help="Comma-separated detector specs: mtcnn, haar, torchvision:<arch>?weights=PATH, hf:DIR."
    ),
    dataset: str = typer.Option(
        ..., "--dataset", help="A COCO-format folder (plain set or COCO-O tree) or an ingested coco-… id."
    ),
    domains: str = typer.Option(
        "all", "--domains", help="all (6 COCO-O styles) | coco-c | coco-c:<severity> | comma-separated names."
    ),
    id_domain: str = typer.Option(
        "original", "--id-domain", help="The in-distribution domain (a generated tree calls it 'original')."
    ),
    trend: str = typer.Option("given", "--trend", help="given (OOD = a + b·ID, default a=0, b=0.45 as COCO-O) | fit."),
    trend_a: float = typer.Option(0.0, "--trend-a"),
    trend_b: float = typer.Option(0.45, "--trend-b"),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    actors: int = typer.Option(2, "--actors", min=1, help="Ray Data actors per detector."),
    gpus_per_actor: float = typer.Option(0.0, "--gpus-per-actor", min=0.0),
    part_rows: int = typer.Option(
        64, "--part-rows", min=1, help="Images per Parquet part of detections (what a kill can lose)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the domain shifts."),
    as_json: bool = typer.Option(False, "--json", help="Print the leaderboard and per-domain metrics as JSON."),
) -> None:
    """Run detectors over a dataset and its shifted domains; COCO mAP per domain and effective robustness."""
    settings = bootstrap()
    from trustflow.flows.detector_eval import detector_evaluate

    specs = [d.strip() for d in detectors.split(",") if d.strip()]
    domain_arg: list[str] | str = (
        domains
        if domains in ("all",) or domains.startswith("coco-c")
        else [d.strip() for d in domains.split(",") if d.strip()]
    )
    with flow_session(settings):
        result = detector_evaluate(
            source=dataset,
            detectors=specs,
            domains=domain_arg,
            id_domain=id_domain,
            seed=seed,
            trend=trend,
            trend_a=trend_a,
            trend_b=trend_b,
            inference={
                "batch_size": batch_size,
                "actors": actors,
                "gpus_per_actor": gpus_per_actor,
                "part_rows": part_rows,
            },
            run_label=Path(dataset).name or dataset,
        )
    if as_json:
        emit_json({k: result[k] for k in ("run_id", "dataset_id", "leaderboard", "metrics", "inference")}, default=str)
        return
    print_domain_table(result["metrics"], id_domain)
    print_leaderboard(result["leaderboard"], f"detector robustness {result['run_id']} on {result['dataset_id']}")


@detect_app.command("score")
@handle_errors
def score_cmd(
    gt: Path = typer.Option(..., "--gt", help="COCO ground truth (instances_*.json)."),
    dt: Path = typer.Option(..., "--dt", help="COCO results file (a JSON list of detections)."),
    engine: str = typer.Option("faster", "--engine", help="faster (faster-coco-eval, default) | pycocotools."),
    as_json: bool = typer.Option(False, "--json", help="Print the 12 numbers as JSON."),
) -> None:
    """The 12 standard COCO bbox numbers of any results file against any ground truth."""
    from trustflow.errors import ConfigError
    from trustflow.tasks.detection.metrics import STAT_NAMES, Engine, score_files

    engines: dict[str, Engine] = {"faster": "faster", "pycocotools": "pycocotools"}
    if engine not in engines:
        raise ConfigError(f"--engine must be faster or pycocotools, got {engine!r}")
    stats = score_files(gt, dt, engine=engines[engine])
    values = stats.as_dict()
    if as_json:
        emit_json(values)
        return
    labels = {
        "AP": "AP @[IoU=0.50:0.95 | area=all | maxDets=100]",
        "AP50": "AP @[IoU=0.50 | area=all | maxDets=100]",
        "AP75": "AP @[IoU=0.75 | area=all | maxDets=100]",
        "APs": "AP @[IoU=0.50:0.95 | area=small | maxDets=100]",
        "APm": "AP @[IoU=0.50:0.95 | area=medium | maxDets=100]",
        "APl": "AP @[IoU=0.50:0.95 | area=large | maxDets=100]",
        "AR1": "AR @[IoU=0.50:0.95 | area=all | maxDets=1]",
        "AR10": "AR @[IoU=0.50:0.95 | area=all | maxDets=10]",
        "AR100": "AR @[IoU=0.50:0.95 | area=all | maxDets=100]",
        "ARs": "AR @[IoU=0.50:0.95 | area=small | maxDets=100]",
        "ARm": "AR @[IoU=0.50:0.95 | area=medium | maxDets=100]",
        "ARl": "AR @[IoU=0.50:0.95 | area=large | maxDets=100]",
    }
    table = Table(title=f"{dt.name} vs {gt.name} ({engine})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name in STAT_NAMES:
        table.add_row(labels[name], f"{values[name]:.4f}")
    console.print(table)
