"""``trustflow asr train|eval``: robust speech recognition (issue 19).

``train`` runs the ``asr_train`` flow (one Ray Train run per method on an ingested speech
dataset); ``eval`` runs ``asr_evaluate`` on the checkpoints it printed, clean and under shifts.
Method, model and shift specs are checked before Prefect or Ray start.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from trustflow.cli.common import bootstrap, console, emit_json, flow_session, handle_errors

asr_app = typer.Typer(no_args_is_help=True, help="Robust speech recognition: WAPAT and baselines, WER under shifts.")


def _methods(text: str) -> list[str]:
    """``plain,wapat?eps=0.02`` → specs (no method option takes a comma)."""
    return [m.strip() for m in text.split(",") if m.strip()]


@asr_app.command("train")
@handle_errors
def train_cmd(
    dataset: str = typer.Option(
        ..., "--dataset", help="An ingested speech dataset id (kinds espeak, pocketsphinx, …)."
    ),
    methods: str = typer.Option(
        "plain,wapat",
        "--methods",
        help="Comma-separated specs: plain, specaugment, wavaugment, wave-pgd, wapat?eps=0.01.",
    ),
    model: str = typer.Option("conv-ctc?width=96&blocks=3", "--model", help="ASR_MODELS spec."),
    epochs: int = typer.Option(2, "--epochs", min=0),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    lr: float = typer.Option(3e-3, "--lr", help="Learning rate (> 0)."),
    max_steps: int | None = typer.Option(None, "--max-steps", min=1),
    domains: list[str] = typer.Option([], "--domain", help="Train only on rows of this domain (repeat)."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="At most this many training utterances."),
    workers: int = typer.Option(1, "--workers", min=1, help="Ray Train workers per method."),
    seed: int = typer.Option(0, "--seed"),
    as_json: bool = typer.Option(False, "--json", help="Print the training runs as JSON."),
) -> None:
    """Train one CTC recogniser per method; prints the run ids to evaluate."""
    from trustflow.tasks.asr.distributed import make_jobs

    specs = _methods(methods)
    make_jobs(
        dataset,
        specs,
        {"model": model, "workers": workers, "limit": limit, "domains": list(domains) or None},
        {"epochs": epochs, "batch_size": batch_size, "lr": lr, "max_steps": max_steps, "seed": seed},
    )
    settings = bootstrap()
    from trustflow.flows.asr import asr_train

    with flow_session(settings):
        result = asr_train(
            dataset=dataset,
            methods=specs,
            model=model,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            max_steps=max_steps,
            domains=list(domains) or None,
            limit=limit,
            workers=workers,
            seed=seed,
        )
    if as_json:
        emit_json(result, default=str)
        return
    table = Table(title=f"ASR training on {dataset}")
    for col in ("method", "run id", "utterances/s", "status"):
        table.add_column(col)
    for r in result["runs"]:
        table.add_row(
            r["method"], r["run_id"], f"{r['utterances_per_s']:.1f}", "done before" if r["skipped"] else "trained"
        )
    console.print(table)
    ids = " ".join(f"--model {r['run_id']}" for r in result["runs"])
    console.print(f"evaluate: trustflow asr eval {ids} --dataset TEST_DATASET")


@asr_app.command("eval")
@handle_errors
def eval_cmd(
    models: list[str] = typer.Option([], "--model", help="An asr_train run id (repeat)."),
    datasets: list[str] = typer.Option([], "--dataset", help="Speech dataset scored clean and shifted (repeat)."),
    clean_only: list[str] = typer.Option([], "--clean-only", help="Speech dataset scored as it is (repeat)."),
    shifts: list[str] = typer.Option(
        [], "--shift", help="SPEECH_SHIFTS spec (repeat); default noise?snr_db=10, reverb, telephone."
    ),
    limit: int | None = typer.Option(None, "--limit", min=1, help="At most this many utterances per dataset."),
    shard: int = typer.Option(16, "--shard", min=1, help="Utterances per Ray task (and per resumable part)."),
    seed: int = typer.Option(0, "--seed"),
    as_json: bool = typer.Option(False, "--json", help="Print the run id, part counts and leaderboard as JSON."),
) -> None:
    """WER (95 % interval), PER and real-time factor per model and domain."""
    from trustflow.errors import ConfigError
    from trustflow.flows.asr import DEFAULT_SHIFTS
    from trustflow.tasks.asr.distributed import model_run
    from trustflow.tasks.asr.shifts.base import SPEECH_SHIFTS

    if not models:
        raise ConfigError("--model: give at least one asr_train run id")
    if not datasets and not clean_only:
        raise ConfigError("--dataset: give at least one ingested speech dataset id (or --clean-only)")
    for m in models:
        model_run(m)
    chosen = list(shifts) or list(DEFAULT_SHIFTS)
    for s in chosen:
        if s != "clean":
            SPEECH_SHIFTS.create(s)
    settings = bootstrap()
    from trustflow.flows.asr import asr_evaluate

    with flow_session(settings):
        result = asr_evaluate(
            models=list(models),
            datasets=list(datasets),
            shifts=chosen,
            clean_only=list(clean_only),
            limit=limit,
            shard=shard,
            seed=seed,
        )
    if as_json:
        emit_json({k: result[k] for k in ("run_id", "results", "leaderboard")}, default=str)
        return
    print_board(result["leaderboard"], f"ASR {result['run_id']}: WER (%) per domain")


def print_board(board: list[dict[str, Any]], title: str) -> None:
    """WER (%) per method (rows) and domain (columns): in-domain first, the OOD mean last."""
    from trustflow.tasks.asr.stages import pivot

    domains, rows = pivot(board)
    methods = [r["method"] for r in rows]
    table = Table(title=title)
    table.add_column("method")
    for d in domains:
        table.add_column(d.replace("?", " ").replace("snr_db=", ""), justify="right")
    for r in rows:
        name = r["method"] if methods.count(r["method"]) == 1 else f"{r['method']} ({r['model']})"
        table.add_row(name, *("–" if r.get(d) is None else f"{100 * r[d]:.1f}" for d in domains))
    console.print(table)
