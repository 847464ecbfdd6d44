"""``trustflow``: the user's entry point. Every command has ``--help``; expected failures
print one ``error:`` line naming the file, field or option, and exit non-zero."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from trustflow.cli import detect, gate, report, robust, services, seval, store_views, view
from trustflow.cli.asr import asr_app
from trustflow.cli.common import bootstrap, console, err_console, flow_session, handle_errors
from trustflow.cli.device import device_app
from trustflow.cli.events import events_app
from trustflow.cli.fairness import fairness_app
from trustflow.cli.fewshot import fewshot_app
from trustflow.cli.fingerprint import fingerprint_app
from trustflow.cli.llm import llm_app
from trustflow.data.loaders.coco import OnInvalid
from trustflow.errors import ConfigError, InputError
from trustflow.settings import StageSources

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
config_app = typer.Typer(no_args_is_help=True, help="Inspect the effective configuration.")
app.add_typer(config_app, name="config")
app.add_typer(services.storage_app, name="storage")
app.add_typer(services.server_app, name="server")
app.add_typer(store_views.runs_app, name="runs")
app.add_typer(store_views.datasets_app, name="datasets")
app.add_typer(seval.seval_app, name="seval")
app.add_typer(robust.robustness_app, name="robustness")
app.add_typer(detect.detect_app, name="detect")
app.add_typer(events_app, name="events")
app.add_typer(fingerprint_app, name="fingerprint")
app.add_typer(fairness_app, name="fairness")
app.add_typer(asr_app, name="asr")
app.add_typer(fewshot_app, name="fewshot")
app.add_typer(device_app, name="device")
app.command("train")(handle_errors(robust.train_cmd))
app.add_typer(llm_app, name="llm")
app.command("show")(store_views.show)
app.command("deploy")(services.deploy)
app.command("gate")(gate.gate_command)
app.command("view")(view.view_command)
report.register(app)


@config_app.command("show")
@handle_errors
def config_show() -> None:
    """Print the effective settings as JSON, secrets masked."""
    settings = bootstrap()
    console.print_json(json.dumps(settings.masked_dump()))


@app.command()
@handle_errors
def ingest(
    source: str = typer.Argument(..., help="A local path, s3://bucket/key or http(s):// URL."),
    kind: str = typer.Option(
        ...,
        "--kind",
        "-k",
        help="Dataset kind: seval | coco | imagefolder | labels | coco-masks | maskfolder | grabcut | synthetic-objects | "
        "espeak | pocketsphinx | speech-folder | … (options as a spec: espeak?seed=1).",
    ),
    store_url: str | None = typer.Option(None, "--store", help="Override the store URL (file:// or s3://)."),
    on_invalid: OnInvalid = typer.Option(  # a Literal: a bad value fails before anything starts
        "error", "--on-invalid", help="COCO sets: error (stop at the first bad entry) | drop (drop and count)."
    ),
    stage_sources: StageSources | None = typer.Option(
        None,
        "--stage-sources",
        help="auto | always | never: upload the source to the store so Ray workers on other nodes read it "
        "(default: setting ingest.stage_sources, auto = when Ray is joined by address or has several nodes).",
    ),
) -> None:
    """Turn a source into Parquet datasets in the store (a no-op for bytes already ingested)."""
    settings = bootstrap()
    if store_url:
        settings = settings.model_copy(update={"store_url": store_url})
    from trustflow.registry import parse_spec
    from trustflow.tasks.ingest import INGESTERS
    from trustflow.tasks.ingest.stages import kind_spec

    name = parse_spec(kind, "--kind").name
    if name not in INGESTERS:
        raise InputError(f"--kind {name!r} is not a dataset kind; use one of: {', '.join(INGESTERS.names())}")
    kind_spec(kind)  # the kind's options (e.g. espeak?seed=1) checked before anything starts
    if on_invalid != "error" and "on_invalid" not in INGESTERS.entry(name).options.model_fields:
        raise ConfigError(f"--on-invalid {on_invalid} applies to kinds with per-entry checks (coco), not to {name!r}")
    from trustflow.data.sources import precheck_source

    precheck_source(source)  # a typo'd path fails in a second, not after Prefect has started
    from trustflow.flows.ingest import ingest_flow

    with flow_session(settings):
        info = ingest_flow(source=source, kind=kind, on_invalid=on_invalid, stage_sources=stage_sources)
    print_datasets([info])
    print_drops(info)


def print_drops(info: dict) -> None:
    """Under ``--on-invalid drop``: how many entries were dropped and why, on stderr (never
    a silent drop; the same counts are in the flow result and the dataset's manifests)."""
    drops = info.get("drops") or {}
    if not drops:
        return
    details = "; ".join(
        f"{where}: " + ", ".join(f"{reason}={n}" for reason, n in sorted(by_reason.items()))
        for where, by_reason in sorted(drops.items())
    )
    err_console.print(
        f"[yellow]dropped {info.get('dropped', 0)} invalid entries[/] (--on-invalid drop) from {info['dataset_id']}: "
        f"{details}",
        highlight=False,
        soft_wrap=True,
    )


def print_datasets(infos: list[dict], listing: bool = False) -> None:
    table = Table(title="datasets")
    table.add_column("dataset_id", no_wrap=True)
    for col in ("kind", "tables (rows)", "status", "source"):
        table.add_column(col, overflow="fold")
    for info in infos:
        tables = ", ".join(f"{k}={v}" for k, v in info["tables"].items())
        table.add_row(
            info["dataset_id"],
            info["kind"],
            tables,
            "complete" if listing else "unchanged" if info["skipped"] else "ingested",
            info["source"],
        )
    console.print(table)


@app.command()
@handle_errors
def demo(
    keep_storage: bool = typer.Option(False, "--keep-storage", help="Leave SeaweedFS running afterwards."),
    local: bool = typer.Option(False, "--local", help="Use the local-directory store instead of SeaweedFS."),
    seval_dir: str | None = typer.Option(
        None, "--seval-dir", help="S-Eval files to ingest (default: ../shared/data/s-eval)."
    ),
    pipelines: str | None = typer.Option(
        None,
        "--pipelines",
        help="Comma-separated demo pipelines: seval, robust-vision, detector, provenance, attributes, fairness, fewshot, "
        "device, asr "
        "(default: seval,robust-vision,detector).",
    ),
    seval: bool = typer.Option(True, "--seval/--no-seval", help="Also run a small S-Eval evaluation."),
    vision: bool = typer.Option(
        True, "--vision/--no-vision", help="Also train standard vs FGSM-LAW on digits and attack both."
    ),
    detectors: bool = typer.Option(
        True, "--detectors/--no-detectors", help="Also evaluate MTCNN and Haar on a face set and 6 shifted domains."
    ),
) -> None:
    """The main job on embedded defaults: start storage, then run the demo pipelines on small inputs."""
    settings = bootstrap()
    from trustflow.cli.demo import run_demo
    from trustflow.flows.demos.base import DEFAULT_PIPELINES, select_pipelines

    chosen = select_pipelines(None if pipelines is None else pipelines.split(","))
    dropped = {"seval": seval, "robust-vision": vision, "detector": detectors}
    chosen = [p for p in chosen if dropped.get(p, True)]
    if not chosen:
        raise InputError(f"no demo pipeline left to run (default set: {','.join(DEFAULT_PIPELINES)})")
    result = run_demo(settings, keep_storage=keep_storage, local=local, seval_dir=seval_dir, pipelines=chosen)
    if result["datasets"]:
        print_datasets(result["datasets"])
    if result.get("seval"):
        from trustflow.cli.seval import print_seval_leaderboard

        console.print(
            f"S-Eval run {result['seval']['run_id']}: {result['seval']['suite']['rows']} prompts from {result['seval']['suite']['source']}"
        )
        print_seval_leaderboard(result["seval"]["leaderboard"])
    if result.get("robust_vision"):
        print_training_comparison(result["robust_vision"])
    if result.get("detectors"):
        from trustflow.cli.detect import print_domain_table, print_leaderboard

        print_domain_table(result["detectors"]["metrics"], "original")
        print_leaderboard(
            result["detectors"]["leaderboard"], "Detector robustness on generated faces (COCO-O style domains)"
        )
    if result.get("provenance"):
        from trustflow.cli.fingerprint import print_trace

        print_trace(result["provenance"])
    if result.get("fairness"):
        from trustflow.cli.fairness import print_board

        print_board(result["fairness"]["leaderboard"], "Fairness on RedditBias: plain vs fairBERTs (MiniLM)")
    if result.get("fewshot"):
        from trustflow.cli.fewshot import print_board as print_fewshot

        print_fewshot(
            result["fewshot"]["leaderboard"],
            "Few-shot adaptation on digits (EfficientNet-Lite0): accuracy and robustness",
        )
    if result.get("asr"):
        from trustflow.cli.asr import print_board as print_asr

        print_asr(result["asr"]["leaderboard"], "Robust speech on espeak-ng + real recordings: WER (%), plain vs WAPAT")
    if result.get("device"):
        from trustflow.cli.device import print_fits

        print_fits(result["device"]["fits"], "Cryogenic LBJT fits on the synthetic lab: 4 K model vs Gummel-Poon")
    if result.get("attributes"):
        from trustflow.cli.attributes import print_drops

        print_drops(
            result["attributes"]["leaderboard"], "Attribute robustness of ImageNet classifiers (embedded photos)"
        )


def print_training_comparison(rows: list[dict]) -> None:
    """Clean vs FGSM vs PGD-10 accuracy per training method (the demo's robust-vision part)."""
    table = Table(title="Robust vision on digits: test accuracy (%), L∞ ε = 0.1")
    for col in ("method", "checkpoint", "clean", "FGSM", "PGD-10", "catastrophic overfitting", "training run"):
        table.add_column(col)
    for r in rows:
        pct = lambda v: "-" if v is None else f"{100 * v:.1f}"  # noqa: E731
        table.add_row(
            r["method"],
            r.get("checkpoint", "best"),
            pct(r.get("clean")),
            pct(r.get("fgsm")),
            pct(r.get("pgd")),
            ", ".join(map(str, r["co_epochs"])) or "none",
            r["train_run"],
        )
    console.print(table)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
