"""``trustflow seval``: run S-Eval evaluations and validate critics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from trustflow.cli.common import bootstrap, console, handle_errors

seval_app = typer.Typer(no_args_is_help=True, help="S-Eval safety evaluation of LLMs.")


def _csv(value: Optional[str]) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def print_leaderboard(rows: list[dict]) -> None:
    table = Table(title="S-Eval leaderboard (percent, 95% bootstrap interval)")
    table.add_column("model", no_wrap=True)
    for col in ("safety score", "ASR", "adaptive ASR", "judge errors", "n"):
        table.add_column(col, justify="right")
    for r in rows:
        def cell(name: str) -> str:
            v, lo, hi = r[name], r[f"{name}_ci_low"], r[f"{name}_ci_high"]
            return "–" if v != v else f"{v:.1f} [{lo:.0f}–{hi:.0f}]"  # noqa: PLR0124 - NaN check

        table.add_row(r["model"], cell("safety_score"), cell("asr"), cell("adaptive_asr"), cell("judge_error_rate"), str(r["judgements"]))
    console.print(table)


@seval_app.command("run")
@handle_errors
def run(
    targets: str = typer.Option("pkg:smollm2-135m,pkg:qwen2.5-1.5b", "--targets", help="Comma-separated model specs to evaluate."),
    critic: str = typer.Option("default", "--critic", help="Critic spec: default (Qwen2.5-1.5B probe) | probe:<model> | embed | refusal | llm:<model> | cascade[:<model>]."),
    suite: str = typer.Option("auto", "--suite", help="auto | seed-suite | an ingested S-Eval dataset id."),
    langs: str = typer.Option("zh,en", "--langs", help="Languages: zh,en."),
    limit: int = typer.Option(1, "--limit", min=1, help="Base prompts per (language, dimension)."),
    attacks: Optional[str] = typer.Option(None, "--attacks", help="Comma-separated attack names (default: all 10)."),
    attacks_per_base: Optional[int] = typer.Option(2, "--attacks-per-base", help="Attack variants kept per base prompt (0: none)."),
    max_tokens: int = typer.Option(96, "--max-tokens", min=1, help="Response length budget."),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    actors: int = typer.Option(1, "--actors", min=1, help="Ray actors (model replicas) per model."),
    run_id: Optional[str] = typer.Option(None, "--run-id", help="Resume or name a run (default: derived from the parameters)."),
) -> None:
    """Evaluate target models on an S-Eval suite and print the leaderboard."""
    settings = bootstrap()
    from trustflow.cli.progress_bar import rich_progress
    from trustflow.flows.seval_evaluate import seval_evaluate
    from trustflow.infra.prefect_runtime import prefect_runtime
    from trustflow.infra.ray_runtime import shutdown_ray

    language_list = _csv(langs) or []
    bad = [lang for lang in language_list if lang not in ("zh", "en")]
    if bad:
        raise typer.BadParameter(f"unknown language(s) {bad}; use zh and/or en", param_hint="--langs")
    try:
        with prefect_runtime(settings), rich_progress():
            result = seval_evaluate(
                targets=_csv(targets) or [], critic=critic, suite=suite, langs=language_list, per_dimension=limit,
                attacks=_csv(attacks), attacks_per_base=None if attacks_per_base is None else attacks_per_base,
                max_tokens=max_tokens, batch_size=batch_size, actors=actors, run_id=run_id,
            )
    finally:
        shutdown_ray()
    console.print(f"run {result['run_id']}: {result['suite']['rows']} prompts from {result['suite']['source']}")
    print_leaderboard(result["leaderboard"])


@seval_app.command("validate-critic")
@handle_errors
def validate_critic_cmd(
    labels: Path = typer.Option(..., "--labels", help="CSV, JSONL or Parquet with prompt/response/label columns."),
    critic: str = typer.Option("default", "--critic", help="Critic spec to validate (default: the project's best offline critic)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first N rows."),
    prompt_col: str = typer.Option("prompt", "--prompt-col"),
    response_col: str = typer.Option("response", "--response-col"),
    label_col: str = typer.Option("unsafe", "--label-col", help="Label column; a value > 0 (or true/unsafe) means unsafe."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Balanced accuracy, precision and recall (unsafe class) of a critic on labelled pairs."""
    bootstrap()
    from trustflow.models.critics import make_critic
    from trustflow.tasks.seval.critic_validation import LabelColumns, read_labels, validate_critic

    labelled = read_labels(labels, LabelColumns(prompt=prompt_col, response=response_col, label=label_col))
    if limit:
        labelled = labelled[:limit]
    scores = validate_critic(make_critic(critic), labelled)
    if as_json:
        print(json.dumps({"critic": critic, **scores.as_dict()}))
        return
    table = Table(title=f"critic {critic} on {labels.name} ({scores.n} pairs)")
    for col in ("balanced accuracy", "precision", "recall", "judge-error rate"):
        table.add_column(col, justify="right")
    table.add_row(f"{scores.balanced_accuracy:.3f}", f"{scores.precision:.3f}", f"{scores.recall:.3f}", f"{scores.judge_error_rate:.3f}")
    console.print(table)


@seval_app.command("train-critic")
@handle_errors
def train_critic_cmd(
    labels: list[Path] = typer.Option(..., "--labels", help="Labelled pairs (CSV, JSONL or Parquet); repeat for several files."),
    model: str = typer.Option("pkg:qwen2.5-1.5b", "--model", help="In-process model spec whose hidden states the probe reads."),
    out: Path = typer.Option(..., "--out", help="Where to write the probe head (.npz)."),
    layer: Optional[int] = typer.Option(None, "--layer", min=1, help="Hidden layer (default: the middle one)."),
    prompt_col: str = typer.Option("prompt", "--prompt-col"),
    response_col: str = typer.Option("response", "--response-col"),
    label_col: str = typer.Option("unsafe", "--label-col"),
) -> None:
    """Train a probe critic head on labelled pairs; use it with --critic probe:<model> after
    copying it to the model cache, or validate it with validate-critic --head."""
    bootstrap()
    from trustflow.models.critics.probe import labels_digest, train_head
    from trustflow.models.llm.spec import load_backend
    from trustflow.tasks.seval.critic_validation import LabelColumns, read_labels

    cols = LabelColumns(prompt=prompt_col, response=response_col, label=label_col)
    labelled = [pair for path in labels for pair in read_labels(path, cols)]
    head = train_head(load_backend(model), labelled, model, labels_digest(labels), layer)
    head.save(out if out.suffix == ".npz" else out.with_suffix(".npz"))
    console.print(f"probe head for {model} (layer {head.layer}, {len(labelled)} pairs) → {out}")
