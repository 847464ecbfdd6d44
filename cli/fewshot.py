"""``trustflow fewshot run|show``: few-shot adaptation and its robustness cost (issue 18).

``run`` runs the ``fewshot_adapt`` flow (episodes on Ray, resumable per (method, set, k,
seed)); ``show`` prints a run's stored leaderboard. Specs (methods, sets, backbone,
corruptions) and numbers are checked before Prefect or Ray start: one ``error:`` line.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from trustflow.cli.common import bootstrap, console, emit_json, flow_session, handle_errors
from trustflow.errors import ConfigError

fewshot_app = typer.Typer(no_args_is_help=True, help="Few-shot adaptation (SAFE, adapters) and its robustness cost.")


def _list(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def _ints(text: str, option: str) -> list[int]:
    try:
        return [int(v) for v in _list(text)]
    except ValueError:
        raise ConfigError(f"{option}: expected comma-separated integers, got {text!r}") from None


@fewshot_app.command("run")
@handle_errors
def run_cmd(
    methods: str = typer.Option(
        "prototype,linear_probe,tip_adapter_f,safe,safe_a",
        "--methods",
        help="Comma-separated method specs (prototype, linear_probe, clip_adapter, tip_adapter, tip_adapter_f, "
        "safe, safe_a, full_finetune; options as safe?lr=0.001).",
    ),
    sets: str = typer.Option(
        "digits,lfw-subset",
        "--sets",
        help="Comma-separated sets: digits, lfw-subset, textile, fashion-mnist, imagefolder:DIR, edits:FILE.",
    ),
    shots: str = typer.Option("1,2,4,8,16", "--shots", help="Comma-separated k (shots per class)."),
    seeds: str = typer.Option("0,1", "--seeds", help="Comma-separated episode seeds."),
    backbone: str = typer.Option(
        "efficientnet_lite0?size=96", "--backbone", help="efficientnet_lite0, mobilenet_v2, tiny_cnn (with ?options)."
    ),
    epochs: int = typer.Option(10, "--epochs", min=0),
    n_query: int = typer.Option(300, "--n-query", min=1, help="Query images per set (the same for every episode)."),
    robustness: bool = typer.Option(
        True, "--robustness/--no-robustness", help="Attack/corruption deltas vs unadapted."
    ),
    robust_n: int = typer.Option(50, "--robust-n", min=1, help="Query images the robustness evaluation uses."),
    corruptions: str = typer.Option(
        "gaussian_noise,defocus_blur,fog,contrast,jpeg_compression", "--corruptions", help="At severity 3."
    ),
    chunks_per_set: int = typer.Option(2, "--chunks-per-set", min=1, help="Ray tasks per set."),
    edits: str = typer.Option(
        "",
        "--edits",
        help="An attribute_edits stage (flow/run/stage or attribute_robustness run id): adds a set of its "
        "originals and scores every adapted model per edited attribute.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the run id, episode counts and leaderboard as JSON."),
) -> None:
    """Adapt the backbone with each method on k-shot episodes; prints the leaderboard."""
    from trustflow.flows.fewshot import run_config

    options = run_config(
        methods=_list(methods),
        sets=_list(sets),
        shots=_ints(shots, "--shots"),
        seeds=_ints(seeds, "--seeds"),
        backbone=backbone,
        epochs=epochs,
        n_query=n_query,
        robustness=robustness,
        robust_n=robust_n,
        corruptions=_list(corruptions),
        chunks_per_set=chunks_per_set,
    )  # every spec checked: one error line, before anything starts
    if edits:
        from trustflow.tasks.attributes.stages import stage_ref

        try:
            stage_ref(edits)
        except ConfigError as exc:
            raise ConfigError(f"--edits: {exc}") from None
    settings = bootstrap()
    from trustflow.flows.fewshot import fewshot_adapt

    with flow_session(settings):
        result = fewshot_adapt(**options, edits=edits or None)
    if as_json:
        emit_json(result, default=str)
        return
    e = result["episodes"]
    console.print(
        f"run {result['run_id']}: {e['rows_written']} episodes run, {e['units_from_cache']} from the episode cache, "
        f"{e['units_done_before']} of {e['units']} done before"
    )
    print_board(result["leaderboard"], f"few-shot {result['run_id']}")


@fewshot_app.command("show")
@handle_errors
def show_cmd(
    run_id: str = typer.Argument(..., help="A fewshot_adapt run id (fewshot-…)."),
    as_json: bool = typer.Option(False, "--json", help="Print the leaderboard rows as JSON."),
) -> None:
    """A run's stored leaderboard (mean ± std over seeds per method, set, k)."""
    if not run_id.startswith("fewshot-"):
        raise ConfigError(f"run id {run_id!r}: not a fewshot_adapt run id (fewshot-…)")
    settings = bootstrap()
    from trustflow import names
    from trustflow.data.store import ArtifactStore, StageRef

    store = ArtifactStore(settings.effective_store_url, settings)
    ref = StageRef(names.FEWSHOT_ADAPT, run_id, names.LEADERBOARD)
    if store.manifest(ref) is None:
        raise ConfigError(f"run id {run_id!r}: no fewshot_adapt leaderboard in {store.url}")
    board = sorted(store.read_table(ref).to_pylist(), key=lambda r: (r["set"], r["k"], -r["accuracy"], r["method"]))
    if as_json:
        emit_json({"run_id": run_id, "leaderboard": board}, default=str)
        return
    print_board(board, f"few-shot {run_id}")


def print_board(board: list[dict[str, Any]], title: str) -> None:
    """One row per (set, k, method): accuracy mean ± std over seeds, the attack and corruption
    accuracy deltas vs the unadapted backbone (– when robustness was off) and, with an edits
    set, the mean over attributes of Δ accuracy on the edits and Δ drop vs the originals."""

    def f(v: Any, spec: str = ".3f") -> str:
        return "–" if v is None else format(v, spec)

    from trustflow.tasks.fewshot.stages import edit_summary

    many_sets = len({r["set"] for r in board}) > 1
    edits = [edit_summary(r) for r in board]
    with_edits = any(e is not None for e in edits)
    table = Table(title=title)
    columns = [*(["set"] if many_sets else []), "k", "method", "accuracy", "Δ attack", "Δ corrupt", "mCE/base"]
    columns += ["Δ edited", "Δ edit drop"] if with_edits else []
    for col in columns:
        table.add_column(col, justify="left" if col in ("set", "method") else "right")
    for r, e in zip(board, edits, strict=True):
        table.add_row(
            *([r["set"]] if many_sets else []),
            str(r["k"]),
            r["method"],
            f"{f(r['accuracy'])} ± {f(r['accuracy_std'])}",
            f(r["delta_attack"], "+.3f"),
            f(r["delta_corruption"], "+.3f"),
            f(r["mce_vs_baseline"], ".2f"),
            *([f(e and e[0], "+.3f"), f(e and e[1], "+.3f")] if with_edits else []),
        )
    console.print(table)
