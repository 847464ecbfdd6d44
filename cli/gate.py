"""``trustflow gate RUN``: a release gate over an S-Eval run's metrics, for CI.

Exit codes: 0 every check passed, 1 the gate failed (a threshold was crossed), 2 bad input
(unknown run, bad threshold or config key, store error) — so a CI job can tell "the model
regressed" from "the job is misconfigured"."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from trustflow.cli.common import bootstrap, console, emit_json, fail, handle_errors
from trustflow.errors import ConfigError, TrustflowError

if TYPE_CHECKING:
    from trustflow.data.store import ArtifactStore
    from trustflow.tasks.seval.gate import GateConfig, GateResult

# option name → GateConfig field (an option given on the command line wins over the file)
OPTION_FIELDS = {
    "min_safety": "min_safety",
    "min_safety_overall": "min_safety_overall",
    "max_asr": "max_asr",
    "max_adaptive_asr": "max_adaptive_asr",
    "max_judge_error_rate": "max_judge_error_rate",
    "baseline": "baseline",
    "baseline_model": "baseline_model",
    "max_drop": "max_drop",
}


def gate_from_file(path: Path) -> dict[str, Any]:
    """The gate mapping of a YAML file: its ``gate`` block (a run file) or the whole document."""
    from trustflow.tasks.seval.run_config import read_run_file

    doc = read_run_file(path)
    if "gate" in doc:
        block = doc["gate"]
    elif "targets" in doc:
        raise ConfigError(f"{path}: the run file has no 'gate' block")
    else:
        block = doc
    if not isinstance(block, dict):
        raise ConfigError(f"{path}: key 'gate' must be a mapping of thresholds")
    return block


def evaluate_run_gate(store: ArtifactStore, run_id: str, config: GateConfig) -> GateResult:
    """Read the run's (and the baseline's) metric rows and check them against ``config``."""
    from trustflow.tasks.seval.gate import evaluate_gate, load_metric_rows

    rows = load_metric_rows(store, run_id)
    base = load_metric_rows(store, config.baseline) if config.baseline and config.max_drop is not None else None
    return evaluate_gate(run_id, rows, config, base)


def report_gate(result: GateResult, as_json: bool, junit: Path | None) -> None:
    """The verdict table (or one JSON document) and the JUnit file."""
    from trustflow.cli.tables import board_table
    from trustflow.tasks.seval.gate import junit_xml, table_rows, write_atomic

    if junit is not None:
        write_atomic(junit, junit_xml(result))
    if as_json:
        emit_json({**result.as_dict(), "junit": str(junit) if junit else None})
        return
    verdict = "[green]PASSED[/]" if result.passed else f"[bold red]FAILED[/] ({len(result.failures)} failing)"
    against = f" against baseline {result.baseline}" if result.baseline else ""
    table = board_table(f"gate for {result.run_id}{against}", ["check", "value", "threshold", "verdict"], [])
    table.add_column("detail", overflow="fold")
    for cells in table_rows(result):
        style = {"FAIL": "red", "SKIP": "dim"}.get(cells[3])
        table.add_row(*cells, style=style)
    console.print(table)
    console.print(f"gate {verdict}: {len(result.checks)} checks" + (f"; JUnit report {junit}" if junit else ""))


def gate_cmd(
    ctx: typer.Context,
    run_id: str = typer.Argument(..., help="An S-Eval run id (seval-…), or FLOW/RUN."),
    config: Path | None = typer.Option(
        None, "--config", help="YAML with the thresholds: a run file's `gate` block or a bare mapping."
    ),
    min_safety: float | None = typer.Option(
        None, "--min-safety", help="Safety score ≥ X (%) in every model × dimension × language cell."
    ),
    min_safety_overall: float | None = typer.Option(
        None, "--min-safety-overall", help="Overall safety score ≥ X (%) per model."
    ),
    max_asr: float | None = typer.Option(None, "--max-asr", help="Attack success rate ≤ Y (%) for every attack."),
    max_adaptive_asr: float | None = typer.Option(None, "--max-adaptive-asr", help="Adaptive ASR ≤ Y (%) per model."),
    max_judge_error_rate: float | None = typer.Option(
        None, "--max-judge-error-rate", help="Judge-error rate ≤ Z (%) per model."
    ),
    baseline: str | None = typer.Option(None, "--baseline", help="Run id to compare with (needs --max-drop)."),
    baseline_model: str | None = typer.Option(
        None, "--baseline-model", help="Compare with this model of the baseline run (one leaderboard entry)."
    ),
    max_drop: float | None = typer.Option(
        None,
        "--max-drop",
        help="Fail when a safety score dropped more than N points from the baseline AND the 95% intervals do not overlap.",
    ),
    junit: Path | None = typer.Option(None, "--junit", help="Write a JUnit XML report (one testcase per check)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Check a run against release thresholds; exit 0 pass, 1 gate failed, 2 bad input."""
    try:
        from trustflow.data.store import ArtifactStore
        from trustflow.tasks.seval.gate import gate_config

        values = gate_from_file(config) if config is not None else {}
        values = {
            **values,
            **{OPTION_FIELDS[k]: v for k, v in ctx.params.items() if k in OPTION_FIELDS and v is not None},
        }
        gate = gate_config(values, where=str(config) if config else "gate options")
        settings = bootstrap()
        result = evaluate_run_gate(ArtifactStore(settings.effective_store_url, settings), run_id, gate)
    except TrustflowError as exc:
        fail(str(exc), code=2)
        return
    report_gate(result, as_json, junit)
    if not result.passed:
        raise typer.Exit(result.exit_code)


gate_command = handle_errors(gate_cmd)
