"""``trustflow train`` and ``trustflow robustness eval``: robust vision from the command line."""

from __future__ import annotations

from fractions import Fraction

import typer
from rich.table import Table

from trustflow.cli.common import bootstrap, console, emit_json, flow_session, handle_errors

robustness_app = typer.Typer(no_args_is_help=True, help="Robustness evaluation of image classifiers.")


def parse_eps(value: str) -> float:
    """``8/255`` or ``0.031`` → float; a clear error otherwise."""
    try:
        return float(Fraction(value.strip()))
    except (ValueError, ZeroDivisionError):
        raise typer.BadParameter(f"{value!r} is not a number or fraction like 8/255", param_hint="--eps") from None


def fingerprint_options(layer: str | None, filters: int | None, weight: float | None) -> dict[str, object] | None:
    """The job's ``fingerprint`` options from ``--fingerprint*``; the sub-options need a layer."""
    if layer is None:
        if filters is not None or weight is not None:
            raise typer.BadParameter(
                "needs --fingerprint LAYER", param_hint="--fingerprint-filters/--fingerprint-lambda"
            )
        return None
    if not layer.strip():
        raise typer.BadParameter("name a conv layer, e.g. net.3", param_hint="--fingerprint")
    out: dict[str, object] = {"layer": layer.strip()}
    if filters is not None:
        out["filters"] = filters
    if weight is not None:
        out["anti_overwrite"] = weight
    return out


def train_cmd(
    method: str = typer.Option(
        "fgsm_law", "--method", help="standard | pgd_at | trades | fgsm_rs | fgsm_law (dashes allowed)."
    ),
    dataset: str = typer.Option("digits", "--dataset", help="digits | npz:PATH | imagefolder:DIR | cifar10:DIR."),
    arch: str = typer.Option(
        "small_cnn", "--arch", help="Classifier spec, e.g. small_cnn, preact_resnet18, wide_resnet?depth=16&width=4."
    ),
    epochs: int = typer.Option(5, "--epochs", min=1),
    workers: int = typer.Option(2, "--workers", min=1, help="Ray Train workers (DDP)."),
    batch_size: int = typer.Option(128, "--batch-size", min=1),
    lr: float = typer.Option(0.1, "--lr"),
    eps: str | None = typer.Option(None, "--eps", help="Training/probe budget, e.g. 8/255 (default: the method's)."),
    image_size: int | None = typer.Option(None, "--image-size"),
    co_policy: str = typer.Option(
        "rollback", "--co-policy", help="On catastrophic overfitting: stop | rollback | continue."
    ),
    gpu: bool = typer.Option(False, "--gpu", help="One GPU per worker (nccl)."),
    strategy: str = typer.Option("ddp", "--strategy", help="ddp | deepspeed (GPU only)."),
    seed: int = typer.Option(0, "--seed"),
    run_id: str | None = typer.Option(
        None, "--run-id", help="Name or resume a run (default: derived from the parameters)."
    ),
    fingerprint: str | None = typer.Option(
        None, "--fingerprint", help="Embed a provenance fingerprint module at this conv layer (e.g. net.3)."
    ),
    fingerprint_filters: int | None = typer.Option(
        None, "--fingerprint-filters", min=1, help="D, the module's filters (default: the layer's channels)."
    ),
    fingerprint_lambda: float | None = typer.Option(
        None, "--fingerprint-lambda", min=0.0, help="λ of the anti-overwriting term (default 5e-4; 0: none)."
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Adversarially train a classifier on Ray Train; checkpoints and metrics land in the store."""
    settings = bootstrap()
    fp_options = fingerprint_options(fingerprint, fingerprint_filters, fingerprint_lambda)
    from trustflow.flows.robust_vision import adversarial_train

    options = {"eps": parse_eps(eps)} if eps else {}
    with flow_session(settings):
        result = adversarial_train(
            method=method.replace("-", "_"),
            dataset=dataset,
            arch=arch,
            epochs=epochs,
            workers=workers,
            batch_size=batch_size,
            lr=lr,
            method_options=options,
            image_size=image_size,
            co_policy=co_policy,
            use_gpu=gpu,
            strategy=strategy,
            seed=seed,
            run_id=run_id,
            fingerprint=fp_options,
        )
    if as_json:
        emit_json(result, default=str)
        return
    table = Table(title=f"training {result['run_id']} ({method} on {dataset})")
    for col in ("epoch", "loss", "clean", "FGSM", "PGD-10", "CO"):
        table.add_column(col, justify="right")
    for r in result["epochs"]:
        table.add_row(
            str(r["epoch"]),
            f"{r['loss']:.3f}",
            f"{r['probe_clean_acc']:.3f}",
            f"{r['fgsm_acc']:.3f}",
            f"{r['pgd_acc']:.3f}",
            ("rolled back" if r["rolled_back"] else "yes") if r["co"] else "",
        )
    console.print(table)
    console.print(f"model: run:{result['run_id']} (best epoch {result['best_epoch']})")


@robustness_app.command("eval")
@handle_errors
def eval_cmd(
    model: str = typer.Option(
        ..., "--model", help="run:<training run>\\[/best|/final] | ckpt:PATH | torchscript:PATH | registry name."
    ),
    dataset: str = typer.Option("digits", "--dataset"),
    attacks: str = typer.Option(
        "clean,fgsm,pgd", "--attacks", help="Comma-separated: clean, fgsm, pgd, autoattack, square."
    ),
    eps: str = typer.Option("8/255", "--eps"),
    alpha: str | None = typer.Option(None, "--alpha", help="PGD step size (default 2.5·eps/steps)."),
    steps: int | None = typer.Option(None, "--steps", min=1, help="PGD steps (default 10)."),
    restarts: int | None = typer.Option(None, "--restarts", min=1),
    random_start: bool | None = typer.Option(None, "--random-start/--no-random-start"),
    norm: str | None = typer.Option(None, "--norm", help="linf | l2 (PGD)."),
    corruptions: str | None = typer.Option(None, "--corruptions", help="'all' or comma-separated corruption names."),
    severities: str = typer.Option("1,2,3,4,5", "--severities"),
    image_size: int | None = typer.Option(None, "--image-size"),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Only the first N test images."),
    seed: int = typer.Option(0, "--seed"),
    as_json: bool = typer.Option(False, "--json", help="Print the result rows as JSON."),
) -> None:
    """Accuracy under attacks and common corruptions (mCE); results Parquet in the store."""
    settings = bootstrap()
    from trustflow.models.vision.resolve import check_local_model

    check_local_model(model)  # a missing or unsafe model file fails here, before Prefect and Ray start
    from trustflow.flows.robust_vision import robustness_evaluate

    pgd_options = {
        k: v
        for k, v in {
            "alpha": parse_eps(alpha) if alpha else None,
            "steps": steps,
            "restarts": restarts,
            "random_start": random_start,
            "norm": norm,
        }.items()
        if v is not None
    }
    attack_list = [a.strip() for a in attacks.split(",") if a.strip()]
    corruption_arg: list[str] | str = (
        [] if not corruptions else ("all" if corruptions == "all" else [c.strip() for c in corruptions.split(",")])
    )
    try:
        levels = [int(s) for s in severities.split(",") if s.strip()]
    except ValueError:
        raise typer.BadParameter(f"{severities!r}: comma-separated integers 1-5", param_hint="--severities") from None
    with flow_session(settings):
        result = robustness_evaluate(
            model=model,
            dataset=dataset,
            attacks=attack_list,
            eps=parse_eps(eps),
            attack_options={"pgd": pgd_options} if pgd_options else None,
            corruptions=corruption_arg,
            severities=levels,
            image_size=image_size,
            limit=limit,
            seed=seed,
        )
    if as_json:
        emit_json({"run_id": result["run_id"], "rows": result["rows"], "summary": result["summary"]}, default=str)
        return
    s = result["summary"]
    table = Table(title=f"{model} on {dataset} (run {result['run_id']})")
    table.add_column("evaluation")
    table.add_column("accuracy", justify="right")
    table.add_row("clean", f"{s['clean_accuracy']:.3f}" if s["clean_accuracy"] is not None else "–")
    for k, v in s["robust_accuracy"].items():
        table.add_row(k, f"{v:.3f}")
    for k, v in s["corruption_accuracy"].items():
        table.add_row(f"corruption {k} (mean over severities)", f"{v:.3f}")
    console.print(table)
    if s.get("mce") is not None:
        console.print(f"mCE (AlexNet-normalised; meaningful for ImageNet-C): {s['mce']:.3f}")


def _register_edits() -> None:
    """``trustflow robustness edits ...`` (cli/attributes.py)."""
    from trustflow.cli.attributes import edits_app

    robustness_app.add_typer(edits_app, name="edits")


_register_edits()
