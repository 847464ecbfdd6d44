"""``trustflow fingerprint embed|extract|verify|attack|trace``: model provenance from the command line.

Model references everywhere: ``ckpt:PATH``, ``run:<training run>[/best|/final]``,
``embed:<run>/<name>`` (a source from ``fingerprint embed``) and ``attack:<run>/<name>`` (a
descendant from ``fingerprint attack``); see docs/pipelines/provenance.md.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from trustflow.cli.common import bootstrap, console, emit_json, flow_session, handle_errors
from trustflow.errors import InputError

fingerprint_app = typer.Typer(no_args_is_help=True, help="Model provenance: frequency-domain fingerprints.")

REF_HELP = "ckpt:PATH | run:<id>(/best|/final) | embed:<run>/<name> | attack:<run>/<name>"


def split_list(value: str | None, option: str) -> list[str]:
    """``a,b,c`` → [a, b, c]; an empty item is an ``InputError`` naming the option."""
    if value is None:
        return []
    items = [v.strip() for v in value.split(",")]
    if any(not v for v in items):
        raise InputError(f"{option} {value!r}: an empty item (use NAME,NAME,...)")
    return items


def parse_seeds(value: str, option: str = "--seeds") -> list[int]:
    try:
        seeds = [int(v) for v in split_list(value, option)]
    except ValueError:
        raise InputError(f"{option} {value!r}: comma-separated integers") from None
    if not seeds:
        raise InputError(f"{option}: at least one seed")
    return seeds


def check_ref(ref: str, option: str) -> None:
    """Fail before any service starts on a malformed reference or a missing local file."""
    scheme, sep, rest = ref.partition(":")
    if not sep or scheme not in ("ckpt", "run", "embed", "attack") or not rest:
        raise InputError(f"{option} {ref!r}: use {REF_HELP}")
    if scheme == "ckpt":
        from trustflow.models.vision.resolve import check_local_model

        check_local_model(ref)
    elif scheme in ("embed", "attack") and rest.count("/") != 1:
        raise InputError(f"{option} {ref!r}: use {scheme}:<run id>/<name>")


def check_attack(spec: str) -> None:
    from trustflow.tasks.provenance.attacks.base import OWNERSHIP_ATTACKS

    OWNERSHIP_ATTACKS.resolve(spec)


def _load_local(settings: Any, ref: str) -> Any:
    from trustflow.data.store import ArtifactStore
    from trustflow.tasks.provenance.stages import portable

    return portable(ArtifactStore(settings.effective_store_url, settings), ref).load()


@fingerprint_app.command("embed")
@handle_errors
def embed_cmd(
    layer: str = typer.Option("net.3", "--layer", help="The conv layer the module sits beside."),
    arch: str = typer.Option("small_cnn", "--arch"),
    dataset: str = typer.Option("fashion-mnist", "--dataset", help="digits | fashion-mnist | npz:PATH | ..."),
    seeds: str = typer.Option("0,1", "--seeds", help="One source per seed."),
    epochs: int = typer.Option(2, "--epochs", min=1),
    lr: float = typer.Option(0.05, "--lr"),
    batch_size: int = typer.Option(128, "--batch-size", min=1),
    method: str = typer.Option("standard", "--method", help="Any training method (standard, pgd_at, trades, ...)."),
    workers: int = typer.Option(0, "--workers", min=0, help="0: train in this process; N: Ray Train, N workers."),
    limit: int | None = typer.Option(10000, "--limit", min=1, help="First N training images (in-process only)."),
    max_steps: int | None = typer.Option(None, "--max-steps", min=1, help="Cap on batches per epoch."),
    filters: int | None = typer.Option(None, "--filters", min=1, help="D (default: the layer's channels)."),
    anti_overwrite: float = typer.Option(5e-4, "--lambda", min=0.0, help="λ of the anti-overwriting term."),
    register: str | None = typer.Option(
        None, "--register", help=f"Comma-separated fingerprinted models to register instead of training ({REF_HELP})."
    ),
    run_id: str | None = typer.Option(None, "--run-id"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Train fingerprinted sources (one per seed) and register their fingerprints in the store."""
    settings = bootstrap()
    refs = split_list(register, "--register")
    for r in refs:
        check_ref(r, "--register")
    seed_list = parse_seeds(seeds)
    from trustflow.flows.fingerprint_embed import fingerprint_embed

    with flow_session(settings):
        result = fingerprint_embed(
            layer=layer,
            arch=arch,
            dataset=dataset,
            seeds=seed_list,
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            method=method.replace("-", "_"),
            workers=workers,
            limit=limit,
            max_steps=max_steps,
            filters=filters,
            anti_overwrite=anti_overwrite,
            sources=refs,
            train=not refs,
            run_id=run_id,
        )
    if as_json:
        emit_json(result, default=str)
        return
    console.print(f"registered fingerprints (run {result['run_id']}, {result['rows']} rows):")
    for s in result["sources"]:
        console.print(f"  {s}")


@fingerprint_app.command("extract")
@handle_errors
def extract_cmd(
    model: str = typer.Argument(..., help=REF_HELP),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The fingerprint of a model: layer, grid, D×C×|S′| and the first components."""
    settings = bootstrap()
    check_ref(model, "MODEL")
    from trustflow.models.fingerprint.module import extract_fingerprint

    fp = extract_fingerprint(_load_local(settings, model))
    d, c, p = fp.shape
    info = {"model": model, "layer": fp.layer, "grid": list(fp.grid), "filters": d, "channels": c, "frequencies": p}
    if as_json:
        emit_json(info)
        return
    console.print(
        f"{model}: module at {fp.layer}, grid {fp.grid[0]}×{fp.grid[1]}, {d} filters × {c} channels × {p} frequencies"
    )
    table = Table(title="first components (filter 0, channel 0)")
    for col in ("u", "v", "real", "imag"):
        table.add_column(col, justify="right")
    for i in range(min(6, p)):
        z = fp.values[0, 0, i]
        table.add_row(str(fp.freqs[i, 0]), str(fp.freqs[i, 1]), f"{z.real:.4f}", f"{z.imag:.4f}")
    console.print(table)


@fingerprint_app.command("verify")
@handle_errors
def verify_cmd(
    source: str = typer.Argument(..., help=f"The fingerprinted source ({REF_HELP})."),
    suspect: str = typer.Argument(..., help="The suspect model."),
    probe: str = typer.Option("fashion-mnist", "--probe", help="Dataset spec of the CKA probe batch."),
    probe_size: int = typer.Option(128, "--probe-size", min=8),
    image_size: int | None = typer.Option(None, "--image-size"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """ρ of SUSPECT against SOURCE, with the two baselines (weight cosine, linear CKA)."""
    settings = bootstrap()
    check_ref(source, "SOURCE")
    check_ref(suspect, "SUSPECT")
    from trustflow.data.store import ArtifactStore
    from trustflow.tasks.provenance.stages import portable, probe_batch, score_one

    store = ArtifactStore(settings.effective_store_url, settings)
    rows = score_one(portable(store, suspect), [portable(store, source)], probe_batch(probe, image_size, probe_size))
    scores = {r["method"]: r["score"] for r in rows}
    if as_json:
        emit_json({"source": source, "suspect": suspect, **scores})
        return
    console.print(
        f"ρ = {scores['ours']:.3f}  (weight cosine {scores['weight_cosine']:.3f}, linear CKA {scores['cka']:.3f})"
    )


@fingerprint_app.command("attack")
@handle_errors
def attack_cmd(
    source: str = typer.Argument(..., help=REF_HELP),
    attack: list[str] = typer.Option(
        ["combined"], "--attack", help="Ownership attack spec, e.g. combined?lr=0.1 (repeatable)."
    ),
    seeds: str = typer.Option("0", "--seeds"),
    image_size: int | None = typer.Option(
        None, "--image-size", help="Attacker data size (default: the module's grid)."
    ),
    run_id: str | None = typer.Option(None, "--run-id"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Make descendants of SOURCE with ownership attacks; prints their attack:<run>/<name> references."""
    settings = bootstrap()
    check_ref(source, "SOURCE")
    for a in attack:
        check_attack(a)
    seed_list = parse_seeds(seeds)
    from trustflow.flows.fingerprint_trace import fingerprint_attack

    with flow_session(settings):
        result = fingerprint_attack(
            sources=[source], attacks=attack, seeds=seed_list, image_size=image_size, run_id=run_id
        )
    if as_json:
        emit_json(result, default=str)
        return
    for r in result["descendants"]:
        console.print(f"{r['ref']}  ({r['attack']}, seed {r['seed']}, {r['seconds']:.1f} s)")


@fingerprint_app.command("trace")
@handle_errors
def trace_cmd(
    sources: str = typer.Option(..., "--sources", help=f"Comma-separated sources ({REF_HELP})."),
    suspects: str | None = typer.Option(None, "--suspects", help="Comma-separated suspects (truth unknown)."),
    independents: str | None = typer.Option(None, "--independents", help="Models known to derive from no source."),
    attack: list[str] = typer.Option([], "--attack", help="Also attack every source with this spec (repeatable)."),
    seeds: str = typer.Option("0", "--seeds", help="Seeds of the --attack descendants."),
    probe: str = typer.Option("fashion-mnist", "--probe", help="Dataset spec of the CKA probe batch."),
    probe_size: int = typer.Option(128, "--probe-size", min=8),
    image_size: int | None = typer.Option(None, "--image-size"),
    run_id: str | None = typer.Option(None, "--run-id"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Trace suspects to sources (or to none) by ρ, weight cosine and CKA; threshold calibrated on the pool."""
    settings = bootstrap()
    src = split_list(sources, "--sources")
    sus = split_list(suspects, "--suspects")
    ind = split_list(independents, "--independents")
    for option, refs in (("--sources", src), ("--suspects", sus), ("--independents", ind)):
        for r in refs:
            check_ref(r, option)
    if not src:
        raise InputError("--sources: at least one source")
    if not (sus or ind or attack):
        raise InputError("nothing to trace: give --suspects, --independents or --attack")
    for a in attack:
        check_attack(a)
    seed_list = parse_seeds(seeds)
    from trustflow.flows.fingerprint_trace import fingerprint_trace

    with flow_session(settings):
        result = fingerprint_trace(
            sources=src,
            suspects=sus,
            attacks=list(attack),
            seeds=seed_list,
            independents=ind,
            probe_dataset=probe,
            probe_size=probe_size,
            image_size=image_size,
            run_id=run_id,
        )
    if as_json:
        emit_json(result, default=str)
        return
    print_trace(result)


def display_name(ref: str) -> str:
    """How tables show a reference: an ``embed:``/``attack:`` model by its name in its run
    (the run is in the table's title), anything else as given."""
    scheme, _, rest = ref.partition(":")
    return rest.rpartition("/")[2] if scheme in ("embed", "attack") else ref


def print_trace(result: dict[str, Any]) -> None:
    """The ρ table (suspects × sources), the verdicts of our method and each method's summary."""
    from trustflow.tasks.provenance.stages import rho_table

    sources = result["sources"]
    verdicts = {v["suspect"]: v for v in result["verdicts"] if v["method"] == "ours"}
    attacks = {d["ref"]: d["attack"] for d in result.get("descendants", [])}
    table = Table(title=f"fingerprint score ρ (trace {result['run_id']})")
    table.add_column("suspect", overflow="fold")
    table.add_column("attack", overflow="fold")
    for s in sources:
        table.add_column(f"ρ vs {display_name(s)}", justify="right", overflow="fold")
    table.add_column("traced to", overflow="fold")
    table.add_column("true source", overflow="fold")
    for row in rho_table(result["scores"]):
        v = verdicts.get(row["suspect"], {})
        truth = (display_name(v["true_source"]) if v.get("true_source") else "none") if v.get("known") else "?"
        table.add_row(
            display_name(row["suspect"]),
            attacks.get(row["suspect"], "–"),
            *[f"{row.get(s, float('nan')):.2f}" for s in sources],
            display_name(v["traced_to"]) if v.get("traced_to") else "none",
            truth,
        )
    console.print(table)
    summary = Table(title="tracing per method (threshold calibrated on the suspects of known truth)")
    for col in ("method", "threshold", "accuracy", "ROC AUC"):
        summary.add_column(col, justify="right")
    for method, s in result["summary"].items():
        summary.add_row(
            method,
            f"{s['threshold']:.3f}",
            "–" if s["accuracy"] is None else f"{s['accuracy']:.3f}",
            "–" if s["auc"] is None else f"{s['auc']:.3f}",
        )
    console.print(summary)
