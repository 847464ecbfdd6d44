"""``trustflow robustness edits make|eval|preview``: ImageNet-E style attribute robustness.

``eval`` runs the ``attribute_robustness`` flow on an edits stage; ``make`` and ``preview``
edit a stored ``masked_objects`` dataset (``tasks/attributes/dataset_edits.py``); ``eval``
also takes any existing ``attribute_edits`` stage (``--edits``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from trustflow.cli.common import bootstrap, console, emit_json, flow_session, handle_errors

edits_app = typer.Typer(no_args_is_help=True, help="Attribute edits (background, size, position, direction).")


def label_map_option(items: list[str] | None, path: Path | None) -> dict[str, list[str]]:
    """``--label-map label=a|b`` entries and/or a JSON file ``{label: [class, ...]}``."""
    from trustflow.errors import InputError
    from trustflow.models.vision.label_maps import parse_label_map

    out: dict[str, list[str]] = {}
    if path is not None:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: not a readable JSON label map ({exc})") from None
        if not isinstance(data, dict) or not all(isinstance(v, (list, str)) for v in data.values()):
            raise InputError(f"{path}: a label map is a JSON object {{label: [class, ...]}}")
        out.update({str(k): [v] if isinstance(v, str) else [str(c) for c in v] for k, v in data.items()})
    for label, classes in parse_label_map(items or []).items():
        out.setdefault(label, []).extend(classes)
    return out


@edits_app.command("eval")
@handle_errors
def eval_cmd(
    edits: str = typer.Option(..., "--edits", help="An attribute_edits stage: <flow>/<run>/<stage>, or a run id."),
    models: list[str] = typer.Option(
        ["mobilenet_v2?pretrained=true", "efficientnet_lite0?pretrained=true"],
        "--model",
        help="Classifier spec (repeat): registry name, timm:NAME?weights=F, ckpt:PATH, run:<id>, torchscript:PATH.",
    ),
    label_map: list[str] | None = typer.Option(None, "--label-map", help="label=class|class (repeat)."),
    label_map_file: Path | None = typer.Option(None, "--label-map-file", help="JSON {label: [class, ...]}."),
    skip_unmapped: bool = typer.Option(False, "--skip-unmapped", help="Leave out labels a model cannot name."),
    image_size: int | None = typer.Option(None, "--image-size", min=8, help="Side for non-ImageNet models."),
    train_dataset: str | None = typer.Option(
        None, "--train-dataset", help="imagefolder:DIR | stage:<flow>/<run>/<stage>: train own models on it."
    ),
    train_methods: str | None = typer.Option(
        None, "--train-methods", help="Comma-separated, e.g. standard,pgd_at,fgsm_law (one model each)."
    ),
    train_epochs: int = typer.Option(5, "--train-epochs", min=1),
    train_workers: int = typer.Option(2, "--train-workers", min=1, help="Ray Train workers per model."),
    train_image_size: int | None = typer.Option(None, "--train-image-size", min=8),
    shard_size: int = typer.Option(32, "--shard-size", min=1, help="Edits per Ray task."),
    bootstrap_samples: int = typer.Option(1000, "--bootstrap", min=10),
    seed: int = typer.Option(0, "--seed"),
    as_json: bool = typer.Option(False, "--json", help="Print the leaderboard rows as JSON."),
) -> None:
    """Top-1/top-5 of each classifier on the originals and every edit level; drop with 95 % intervals."""
    settings = bootstrap()
    from trustflow.models.vision.resolve import check_local_model

    for m in models:
        check_local_model(m)  # a missing or unsafe model file fails here, before Prefect and Ray start
    mapping = label_map_option(label_map, label_map_file)
    from trustflow.flows.attribute_robustness import attribute_robustness

    methods = [m.strip() for m in (train_methods or "").split(",") if m.strip()]
    with flow_session(settings):
        result = attribute_robustness(
            models=list(models),
            edits=edits,
            train_dataset=train_dataset,
            train_methods=methods,
            train_epochs=train_epochs,
            train_workers=train_workers,
            train_image_size=train_image_size,
            label_map=mapping,
            skip_unmapped=skip_unmapped,
            image_size=image_size,
            shard_size=shard_size,
            bootstrap=bootstrap_samples,
            seed=seed,
        )
    if as_json:
        emit_json({k: result[k] for k in ("run_id", "edits", "trained", "prediction", "leaderboard")}, default=str)
        return
    print_drops(result["leaderboard"], f"attribute robustness {result['run_id']} on {result['edits']}")
    for t in result["trained"]:
        console.print(f"trained {t['method']}: {t['model']}")


def print_drops(board: list[dict[str, Any]], title: str) -> None:
    """Per model: top-1 on the originals and the pooled drop per attribute with its interval."""
    from trustflow.tasks.attributes.metrics import ALL_LEVELS, ORIGINAL

    if not board:
        console.print(f"{title}: no predictions (every label unmapped for every model? see --label-map)")
        return
    table = Table(title=title)
    for col in ("model", "attribute", "level", "top-1", "top-1 original", "drop", "95 % interval"):
        table.add_column(col, justify="left" if col in ("model", "attribute", "level") else "right")
    pooled = {(r["model"], r["attribute"]) for r in board if r["level"] == ALL_LEVELS}
    for r in board:
        # the original, then one row per attribute: its pooled "all" row, or its only level
        if r["attribute"] != ORIGINAL and (r["model"], r["attribute"]) in pooled and r["level"] != ALL_LEVELS:
            continue
        table.add_row(
            r["model"],
            r["attribute"],
            r["level"],
            f"{r['top1']:.3f}",
            f"{r['top1_original']:.3f}",
            f"{r['drop_top1']:+.3f}",
            f"{r['drop_low']:+.3f} … {r['drop_high']:+.3f}",
        )
    console.print(table)


@edits_app.command("make")
@handle_errors
def make_cmd(
    objects: str = typer.Option(..., "--objects", help="A masked_objects dataset id (see `trustflow datasets`)."),
    editors: list[str] = typer.Option([], "--editor", help="Editor spec (repeat); default: every editor."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Edit every object with every editor level; prints the edits stage to evaluate."""
    from trustflow.data.store import ArtifactStore
    from trustflow.tasks.attributes.dataset_edits import edit_dataset

    settings = bootstrap()
    with flow_session(settings):
        ref = edit_dataset(ArtifactStore(settings=settings), objects, list(editors), seed)
    console.print(f"edits: {ref}  (evaluate: trustflow robustness edits eval --edits {ref})")


@edits_app.command("preview")
@handle_errors
def preview_cmd(
    objects: str = typer.Option(..., "--objects", help="A masked_objects dataset id."),
    out: Path = typer.Option(Path("preview.png"), "--out", help="PNG to write."),
    object_id: str | None = typer.Option(None, "--object", help="Which object (default: the first by id)."),
    editors: list[str] = typer.Option([], "--editor", help="Editor spec (repeat); default: every editor."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """A grid PNG of one object across every editor and level."""
    from trustflow.data.store import ArtifactStore
    from trustflow.tasks.attributes.dataset_edits import preview_dataset

    settings = bootstrap()
    out.write_bytes(preview_dataset(ArtifactStore(settings=settings), objects, object_id, list(editors), seed))
    console.print(f"wrote {out}")
