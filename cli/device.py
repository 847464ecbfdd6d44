"""``trustflow device fit|show|export``: compact models of cryogenic SOI lateral BJTs (issue 20).

``fit`` runs the ``device_fit`` flow on an ingested ``gummel`` dataset (fits on Ray, resumable
per (device, T, V_sub or joint, model)); ``show`` prints a run's joint fits; ``export`` writes
one ngspice subcircuit per (device, T) from a run's joint fits. Models, numbers, ids and the
output folder are checked before Prefect or Ray start: one ``error:`` line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from trustflow.cli.common import bootstrap, console, emit_json, flow_session, handle_errors
from trustflow.errors import ConfigError

device_app = typer.Typer(no_args_is_help=True, help="Cryogenic device models: fit Gummel data, export to ngspice.")


def _list(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def _run_id(run_id: str) -> str:
    if not run_id.startswith("device-"):
        raise ConfigError(f"run id {run_id!r}: not a device_fit run id (device-…)")
    return run_id


def _fits(run_id: str) -> list[dict[str, Any]]:
    """A run's stored fit rows (ordered), or one ``ConfigError`` when the store has none."""
    settings = bootstrap()
    from trustflow import names
    from trustflow.data.store import ArtifactStore, StageRef
    from trustflow.tasks.device.stages import order

    store = ArtifactStore(settings.effective_store_url, settings)
    ref = StageRef(names.DEVICE_FIT, run_id, names.FITS)
    if store.manifest(ref) is None:
        raise ConfigError(f"run id {run_id!r}: no device_fit fits in {store.url}")
    return order(store.read_table(ref).to_pylist())


@device_app.command("fit")
@handle_errors
def fit_cmd(
    dataset: str = typer.Argument(
        ..., help="An ingested gummel dataset id (gummel-…; `trustflow ingest F --kind gummel`)."
    ),
    models: str = typer.Option("cryo4k,gummel_poon", "--models", help="Comma-separated compact models."),
    per_curve: bool = typer.Option(
        True, "--per-curve/--joint-only", help="Also fit each V_sub curve alone (besides the joint fit)."
    ),
    starts: int = typer.Option(3, "--starts", help="Multi-start count per fit."),
    max_nfev: int = typer.Option(400, "--max-nfev", help="Function evaluations per fit stage."),
    seed: int = typer.Option(0, "--seed"),
    as_json: bool = typer.Option(False, "--json", help="Print the run id, counts and joint fits as JSON."),
) -> None:
    """Fit every (device, T) of a gummel dataset; prints the joint fits."""
    from trustflow.flows.device import run_config

    options = run_config(
        dataset=dataset, models=_list(models), per_curve=per_curve, starts=starts, max_nfev=max_nfev, seed=seed
    )  # checked: one error line, before anything starts
    settings = bootstrap()
    from trustflow.flows.device import device_fit

    with flow_session(settings):
        result = device_fit(**options)
    if as_json:
        emit_json(result, default=str)
        return
    c = result["counts"]
    console.print(
        f"run {result['run_id']}: {c['rows_written']} fits run, {c['units_done_before']} of {c['units']} done before"
    )
    print_fits(result["fits"], f"device fits {result['run_id']}")


@device_app.command("show")
@handle_errors
def show_cmd(
    run_id: str = typer.Argument(..., help="A device_fit run id (device-…)."),
    as_json: bool = typer.Option(False, "--json", help="Print every fit row as JSON."),
) -> None:
    """A run's stored joint fits (RMS error, parameters with standard errors)."""
    from trustflow.tasks.device.stages import summary

    rows = _fits(_run_id(run_id))
    if as_json:
        emit_json({"run_id": run_id, "fits": rows}, default=str)
        return
    print_fits(summary(rows), f"device fits {run_id}")


@device_app.command("export")
@handle_errors
def export_cmd(
    run_id: str = typer.Argument(..., help="A device_fit run id (device-…)."),
    out: Path = typer.Option(Path("spice"), "--out", help="Folder for the .lib files (one per device and T)."),
    model: str = typer.Option("cryo4k", "--model", help="Which fitted model to export."),
    as_json: bool = typer.Option(False, "--json", help="Print the written files as JSON."),
) -> None:
    """ngspice subcircuits (behavioural sources, effective temperature as a parameter) of a
    run's joint fits: ``OUT/<device>/<subckt>.lib``."""
    from trustflow.models.device.base import COMPACT_MODELS

    _run_id(run_id)
    if model not in COMPACT_MODELS:
        raise ConfigError(f"--model: unknown compact model {model!r}; known: {', '.join(COMPACT_MODELS)}")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out: {out} exists and is not a folder")
    rows = [r for r in _fits(run_id) if r["v_sub"] is None and r["model"] == model]
    if not rows:
        raise ConfigError(f"--model: run {run_id} has no joint {model} fit")
    from trustflow.tasks.device.export import write_subcircuits

    written = write_subcircuits(rows, out)
    if as_json:
        emit_json({"run_id": run_id, "model": model, "files": written}, default=str)
        return
    for w in written:
        console.print(f"{w['device_id']} at {w['temperature_k']:g} K: {w['path']} ({w['subckt']})")


def print_fits(fits: list[dict[str, Any]], title: str) -> None:
    """One row per joint fit (RMS in decades, decades of I_C, points used/excluded), then per
    (device, model) the parameters as value ± standard error, a column per temperature."""
    table = Table(title=title)
    for col in ("device", "T [K]", "model", "V_sub [V]", "RMS [dec]", "I_C dec", "used/excl"):
        table.add_column(col, justify="left" if col in ("device", "model") else "right")
    for f in fits:
        table.add_row(
            f["device_id"],
            f"{f['temperature_k']:g}",
            f["model"],
            ",".join(f"{v:g}" for v in f["v_subs"]),
            f"{f['rms_decades']:.4f}",
            f"{f['ic_decades']:.1f}",
            f"{f['n_points']}/{f['n_excluded']}",
        )
    console.print(table)
    for device, model in dict.fromkeys((f["device_id"], f["model"]) for f in fits):
        fs = [f for f in fits if f["device_id"] == device and f["model"] == model]
        params = Table(title=f"{device} · {model}: value ± std. error (± 0: held fixed)")
        params.add_column("parameter")
        for f in fs:
            params.add_column(f"{f['temperature_k']:g} K", justify="right")
        for name in fs[0]["params"]:
            params.add_row(name, *(f"{f['params'][name][0]:.4g} ± {f['params'][name][1]:.2g}" for f in fs))
        console.print(params)
