"""``trustflow seval``: run S-Eval evaluations and validate critics."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from trustflow import names
from trustflow.cli.common import bootstrap, console, emit_json, fail, flow_session, handle_errors
from trustflow.errors import ConfigError, TrustflowError

if TYPE_CHECKING:  # heavy imports only where a command needs them
    import pyarrow as pa

    from trustflow.data.store import ArtifactStore
    from trustflow.settings import Settings
    from trustflow.tasks.seval.run_config import RunConfig

seval_app = typer.Typer(no_args_is_help=True, help="S-Eval safety evaluation of LLMs.")


def _csv(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def print_seval_leaderboard(rows: list[dict], aliases: dict[str, str] | None = None) -> None:
    """The S-Eval leaderboard as a terminal table (cells formatted by ``tasks/seval/report.py``);
    models appear by display name (``aliases`` {spec: name}, else a shortened spec)."""
    from trustflow.cli.tables import board_table, display_names
    from trustflow.tasks.seval.report import BOARD_TITLE, board_text

    header, body = board_text(rows)
    shown = display_names([r["model"] for r in rows], aliases)
    body = [[shown[r["model"]], *cells[1:]] for r, cells in zip(rows, body, strict=True)]
    console.print(board_table(BOARD_TITLE, header, body))


@seval_app.command("run")
@handle_errors
def run(
    ctx: typer.Context,
    config: Path | None = typer.Option(
        None,
        "--config",
        help="Run file (YAML: targets, critic, suite, limits, gate); options given on the command line win over it.",
    ),
    junit: Path | None = typer.Option(
        None, "--junit", help="With a `gate` block: write the gate's JUnit XML report here."
    ),
    targets: str = typer.Option(
        "pkg:smollm2-135m,pkg:qwen2.5-1.5b", "--targets", help="Comma-separated model specs to evaluate."
    ),
    critic: str = typer.Option(
        "default",
        "--critic",
        help="Critic spec: default (Qwen2.5-1.5B probe) | probe:<model> | embed | refusal | llm:<model> | cascade[:<model>].",
    ),
    suite: str = typer.Option("auto", "--suite", help="auto | seed-suite | an ingested S-Eval dataset id."),
    langs: str = typer.Option("zh,en", "--langs", help="Languages: zh,en."),
    limit: int = typer.Option(1, "--limit", min=1, help="Base prompts per (language, dimension)."),
    attacks: str | None = typer.Option(None, "--attacks", help="Comma-separated attack names (default: all 10)."),
    attacks_per_base: int | None = typer.Option(
        2, "--attacks-per-base", help="Attack variants kept per base prompt (0: none)."
    ),
    max_tokens: int = typer.Option(96, "--max-tokens", min=1, help="Response length budget."),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    actors: int = typer.Option(1, "--actors", min=1, help="Ray actors (model replicas) per model."),
    concurrency: int = typer.Option(
        8, "--concurrency", min=1, help="Requests in flight per HTTP target (openai:, endpoint:), kept full."
    ),
    alias: list[str] = typer.Option(
        [], "--alias", help="NAME=SPEC: show target SPEC as NAME in the leaderboard (repeatable)."
    ),
    run_id: str | None = typer.Option(
        None, "--run-id", help="Resume or name a run (default: derived from the parameters)."
    ),
    rationale_model: str = typer.Option(
        "none",
        "--rationale-model",
        help="Model spec writing a 1-2 sentence rationale for unsafe verdicts, e.g. pkg:qwen2.5-1.5b "
        "(default none: an LLM pass costs minutes on CPU; a later run with a model adds them).",
    ),
    max_rationales: int = typer.Option(
        200, "--max-rationales", min=0, help="At most this many rationales per run, riskiest verdicts first."
    ),
    cache: bool = typer.Option(
        True,
        "--cache/--no-cache",
        help="Reuse earlier answers to identical chat calls from the store's LLM response cache (--no-cache: call every time).",
    ),
    cost_limit: float | None = typer.Option(
        None,
        "--cost-limit",
        min=0.0,
        help="USD this invocation may spend on target calls (endpoint prices; cache hits are free); "
        "reached: stop cleanly, exit 3, rerun to resume.",
    ),
    token_limit: int | None = typer.Option(
        None, "--token-limit", min=1, help="Tokens this invocation may spend on target calls; like --cost-limit."
    ),
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="Print the requests still to make (after resume and cache hits) and, with prices, the estimated cost; run nothing.",
    ),
) -> None:
    """Evaluate target models on an S-Eval suite and print the leaderboard; with a run file's
    `gate` block, check the gate afterwards (exit 1 when it fails, 2 on a bad run file).
    Exit 3: --cost-limit / --token-limit reached (answers so far kept; rerun to resume)."""
    bad = [lang for lang in (_csv(langs) or []) if lang not in ("zh", "en")]
    if bad:
        raise typer.BadParameter(f"unknown language(s) {bad}; use zh and/or en", param_hint="--langs")
    try:
        cfg, aliases = _run_config(ctx, config, junit)
    except TrustflowError as exc:
        fail(str(exc), code=2)
        return
    settings = bootstrap()
    if dry_run:
        _dry_run(settings, cfg, aliases)
        return
    from trustflow.flows.seval_evaluate import seval_evaluate

    if cfg.gate is not None:
        _precheck_gate(settings, cfg)
    with flow_session(settings):
        result = seval_evaluate(**cfg.flow_kwargs())
    console.print(f"run {result['run_id']}: {result['suite']['rows']} prompts from {result['suite']['source']}")
    print_seval_leaderboard(result["leaderboard"], aliases)
    from trustflow.tasks.seval.report import cache_line

    line = cache_line(result.get("cache"))
    if line:
        console.print(line)
    from trustflow.tasks.seval.report import usage_lines

    for line in usage_lines(result.get("usage")):
        console.print(line)
    if cfg.gate is not None:
        from trustflow.cli.gate import evaluate_run_gate, report_gate
        from trustflow.data.store import ArtifactStore

        try:
            outcome = evaluate_run_gate(
                ArtifactStore(settings.effective_store_url, settings), result["run_id"], cfg.gate
            )
        except TrustflowError as exc:  # e.g. a threshold naming an attack the run does not have
            fail(f"gate: {exc}", code=2)
            return
        report_gate(outcome, as_json=False, junit=junit)
        if not outcome.passed:
            raise typer.Exit(outcome.exit_code)


def _dry_run(settings: Settings, cfg: RunConfig, aliases: dict[str, str]) -> None:
    """What the run would still call and cost (tasks/seval/dry_run.py); starts no flow."""
    from trustflow.data.store import ArtifactStore
    from trustflow.flows.seval_evaluate import default_run_id
    from trustflow.tasks.seval.dry_run import plan_run

    kw = cfg.flow_kwargs()
    id_keys = ("targets", "critic", "suite", "langs", "per_dimension", "attacks", "attacks_per_base", "seed")
    run_id = kw["run_id"] or default_run_id(**{k: kw[k] for k in id_keys}, max_tokens=kw["max_tokens"])
    store = ArtifactStore(settings.effective_store_url, settings)
    keys = ("targets", "suite", "langs", "per_dimension", "attacks", "attacks_per_base", "seed", "max_tokens", "cache")
    plan = plan_run(store, run_id, **{k: kw[k] for k in keys})
    table = Table(title=f"dry run of {run_id}: {plan['suite']['rows']} prompts from {plan['suite']['source']}")
    for col in ("target", "prompts", "answered", "cache hits", "requests", "est. tokens", "est. cost"):
        table.add_column(col, justify="left" if col == "target" else "right")

    def money(value: float | None) -> str:
        return "no prices" if value is None else f"${value:.4f}"

    for spec, t in plan["targets"].items():
        table.add_row(
            aliases.get(spec, spec),
            str(t["prompts"]),
            str(t["answered"]),
            "–" if t["cache_hits"] is None else str(t["cache_hits"]),
            str(t["requests"]),
            f"{t['prompt_tokens'] + t['completion_tokens']:,}",
            money(t["cost_usd"]),
        )
    console.print(table)
    total = plan["total"]
    console.print(
        f"dry run: {total['requests']} requests to make, ~{total['prompt_tokens']:,} prompt + "
        f"≤{total['completion_tokens']:,} completion tokens, estimated cost {money(total['cost_usd'])}"
    )


def _run_config(ctx: typer.Context, config: Path | None, junit: Path | None) -> tuple[RunConfig, dict[str, str]]:
    """The run as a validated ``RunConfig``: the run file (if any) with the options given on
    the command line set over it, or the options alone; plus the checked aliases."""
    from trustflow.cli.tables import parse_aliases
    from trustflow.tasks.seval.run_config import OPTION_PATHS, read_run_file, run_config, with_overrides

    def value(name: str) -> object:
        raw = ctx.params[name]
        if name in ("targets", "langs", "attacks"):
            return _csv(raw)
        if name == "alias":
            return dict((v.partition("=")[0].strip(), v.partition("=")[2].strip()) for v in raw)
        return raw

    def on_command_line(name: str) -> bool:  # by name: Typer builds on its own copy of click's enum
        source = ctx.get_parameter_source(name)
        return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")

    given = [n for n in OPTION_PATHS if config is None or on_command_line(n)]
    doc = read_run_file(config) if config is not None else {}
    cfg = run_config(with_overrides(doc, {n: value(n) for n in given}), str(config) if config else "seval run options")
    if junit is not None and cfg.gate is None:
        raise ConfigError("--junit: the run has no gate (add a 'gate' block to the run file)")
    if cfg.gate is not None and not cfg.gate.has_checks():
        raise ConfigError(f"{config}: key 'gate': no thresholds given (min_safety, max_asr, max_drop, …)")
    if cfg.gate is not None and cfg.gate.max_drop is not None and cfg.gate.baseline is None:
        raise ConfigError(f"{config}: key 'gate.max_drop' needs 'gate.baseline' (a run id to compare with)")
    return cfg, parse_aliases(cfg.alias_options(), cfg.targets)


def _precheck_gate(settings: Settings, cfg: RunConfig) -> None:
    """Fail before the run (exit 2), not after it, when the gate's baseline cannot be read."""
    from trustflow.data.store import ArtifactStore
    from trustflow.tasks.seval.gate import load_metric_rows

    if cfg.gate is None or cfg.gate.baseline is None or cfg.gate.max_drop is None:
        return
    try:
        load_metric_rows(ArtifactStore(settings.effective_store_url, settings), cfg.gate.baseline)
    except TrustflowError as exc:
        fail(f"gate.baseline: {exc}", code=2)


@seval_app.command("adaptive")
@handle_errors
def adaptive_cmd(
    run_id: str = typer.Argument(..., help="A finished `seval run` (its suite, responses and verdicts)."),
    attacks: str = typer.Option(
        "pair,crescendo",
        "--attacks",
        help="Comma-separated adaptive attack specs: pair | tap[?branching=3&width=4] | crescendo (options with ?k=v).",
    ),
    rounds: int | None = typer.Option(
        None, "--rounds", min=1, max=50, help="Rounds per attack (TAP: depth); default: each attack's own."
    ),
    attacker: str = typer.Option(
        "pkg:qwen2.5-1.5b", "--attacker", help="Model spec of the attacker (tester) LLM, e.g. pkg:qwen2.5-1.5b."
    ),
    targets: str | None = typer.Option(
        None, "--targets", help="Comma-separated target specs (default: every model of the run)."
    ),
    critic: str | None = typer.Option(None, "--critic", help="Critic spec (default: the run's own critic)."),
    langs: str | None = typer.Option(
        None, "--langs", help="Languages of the base prompts attacked: zh,en (default: all)."
    ),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Base prompts attacked per language (default: all)."),
    max_tokens: int = typer.Option(
        96, "--max-tokens", min=1, help="Target reply length (the run's own by default: 96)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seeds the attacker's choices and the prompt sample."),
    cache: bool = typer.Option(True, "--cache/--no-cache", help="Go through the store's LLM response cache."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output (one JSON document)."),
) -> None:
    """Adaptive multi-round attacks (PAIR, TAP, Crescendo) on a run's base prompts: the attacker
    LLM rewrites from the target's answers and the critic's scores; resumable per round. Prints
    ASR by round and rounds to break, and rewrites the run's metrics and leaderboard."""
    from trustflow.models.llm.spec import parse_spec
    from trustflow.tasks.seval.adaptive import get_adaptive

    names_ = _csv(attacks) or []
    if not names_:
        raise ConfigError("--attacks: give at least one of pair, tap, crescendo")
    for spec in names_:
        try:
            get_adaptive(spec)
        except ConfigError as exc:
            raise ConfigError(f"--attacks: {exc}") from None
    try:
        parse_spec(attacker)
    except ConfigError as exc:
        raise ConfigError(f"--attacker: {exc}") from None
    bad = [lang for lang in (_csv(langs) or []) if lang not in ("zh", "en")]
    if bad:
        raise ConfigError(f"--langs: unknown language(s) {', '.join(bad)}; use zh and/or en")
    settings = bootstrap()
    from trustflow.data.store import ArtifactStore
    from trustflow.flows.seval_adaptive import seval_adaptive
    from trustflow.tasks.seval.adaptive.stage import adaptive_plan

    store = ArtifactStore(settings.effective_store_url, settings)
    adaptive_plan(store, run_id, _csv(targets), critic)  # an unknown run, target or critic: one line, no flow started

    with flow_session(settings, progress=not as_json):
        result = seval_adaptive(
            run_id=run_id,
            attacks=names_,
            attacker=attacker,
            targets=_csv(targets),
            critic=critic,
            rounds=rounds,
            langs=_csv(langs),
            limit=limit,
            max_tokens=max_tokens,
            seed=seed,
            cache=cache,
        )
    summary = adaptive_summary(store, run_id)
    if as_json:
        emit_json(
            {**{k: result[k] for k in ("run_id", "critic", "loops")}, **summary, "leaderboard": result["leaderboard"]},
            default=str,
        )
        return
    console.print(f"run {run_id}: adaptive attacks judged by {result['critic']}")
    table = Table(title="Adaptive attacks: ASR by round (cumulative %), rounds to break")
    rounds_seen = sorted({r["round"] for r in summary["asr_by_round"]})
    for col in ["model", "attack", "conversations", *[f"r{r}" for r in rounds_seen], "rounds to break (median)"]:
        table.add_column(col)
    for row in summary["attacks"]:
        cells = [f"{row['asr_by_round'].get(r, float('nan')):.1f}" for r in rounds_seen]
        median = "–" if row["rounds_to_break"] is None else f"{row['rounds_to_break']:.1f} ({row['broken']} broken)"
        table.add_row(row["model"], row["attack"], str(row["conversations"]), *cells, median)
    console.print(table)
    print_seval_leaderboard(result["leaderboard"])


def adaptive_summary(store: ArtifactStore, run_id: str) -> dict[str, Any]:
    """ASR by round and rounds to break per (model, attack), from the run's metric stages."""
    from trustflow.data.store import StageRef

    flow = names.SEVAL_EVALUATE
    by_round = [
        r
        for r in store.read_table(StageRef(flow, run_id, names.ADAPTIVE_METRICS)).to_pylist()
        if r["metric"] == "asr_by_round" and r["lang"] == "*"
    ]
    breaks = {
        (r["model"], r["attack"]): r
        for r in store.read_table(StageRef(flow, run_id, names.METRICS)).to_pylist()
        if r["metric"] == "rounds_to_break"
    }
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for r in by_round:
        entry = rows.setdefault(
            (r["model"], r["attack"]),
            {"model": r["model"], "attack": r["attack"], "conversations": r["n"], "asr_by_round": {}},
        )
        entry["asr_by_round"][r["round"]] = r["value"]
    for key, entry in rows.items():
        found = breaks.get(key)
        entry["rounds_to_break"] = found["value"] if found else None
        entry["broken"] = found["n"] if found else 0
    return {"attacks": list(rows.values()), "asr_by_round": by_round}


@seval_app.command("validate-critic")
@handle_errors
def validate_critic_cmd(
    labels: str = typer.Option(
        ...,
        "--labels",
        help="CSV/JSONL/Parquet file, pyrit:harm | pyrit:refusal (human labels), written[:<set>] or an ingested labels-… id.",
    ),
    critic: str = typer.Option(
        "default", "--critic", help="Critic spec to validate (default: the project's best offline critic)."
    ),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Only the first N labelled rows."),
    prompt_col: str = typer.Option("prompt", "--prompt-col"),
    response_col: str = typer.Option("response", "--response-col"),
    label_col: str = typer.Option(
        "unsafe", "--label-col", help="Label column(s), comma = annotators; a score >= 0.5 (or true/unsafe) is unsafe."
    ),
    cross_source: bool = typer.Option(
        False, "--cross-source", help="Probe critics: train on all sources but one, test on it (the matrix)."
    ),
    layers: str = typer.Option("14", "--layers", help="--cross-source: candidate layers (chosen by inner CV)."),
    poolings: str = typer.Option("mean", "--poolings", help="--cross-source: candidate poolings: mean,last,max."),
    with_written: bool = typer.Option(
        True, "--with-written/--human-only", help="--cross-source: add the LLM-written training sets (weight 0.5)."
    ),
    bootstrap_n: int = typer.Option(1000, "--bootstrap", min=10, help="Bootstrap replicates for the 95% intervals."),
    out: Path | None = typer.Option(None, "--out", help="Folder for validation.json and reliability.png."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Balanced accuracy, precision/recall of unsafe, AUC, calibration (ECE, reliability plot) with
    bootstrap 95% intervals, per source and per language; --cross-source for the honest matrix."""
    settings = bootstrap()
    from trustflow.cli.seval_critic import run_validate
    from trustflow.data.seval.labels import LabelColumns

    cols = LabelColumns(prompt=prompt_col, response=response_col, label=label_col)
    run_validate(
        settings, labels, critic, cols, limit, out, as_json, cross_source, layers, poolings, with_written, bootstrap_n
    )


@seval_app.command("train-critic")
@handle_errors
def train_critic_cmd(
    labels: list[str] = typer.Option(
        ..., "--labels", help="Labelled pairs (file, pyrit:harm, written, labels-… id); repeat for several."
    ),
    model: str = typer.Option(
        "pkg:qwen2.5-1.5b", "--model", help="In-process model spec whose hidden states the probe reads."
    ),
    out: Path = typer.Option(
        ..., "--out", help="Where to write the probe head: PATH.npz or store:KEY (read back with probe?head=…)."
    ),
    layer: int | None = typer.Option(None, "--layer", min=1, help="Hidden layer (default: the middle one)."),
    layers: str | None = typer.Option(None, "--layers", help="Several layers, comma-separated (concatenated)."),
    pooling: str = typer.Option("mean", "--pooling", help="mean | last | max over the response tokens."),
    prompt_col: str = typer.Option("prompt", "--prompt-col"),
    response_col: str = typer.Option("response", "--response-col"),
    label_col: str = typer.Option("unsafe", "--label-col"),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Train a probe critic head on labelled pairs (the head records which labels trained it); use
    it with --critic probe:<model> after copying it to the model cache."""
    settings = bootstrap()
    from trustflow.cli.seval_critic import run_train
    from trustflow.data.seval.labels import LabelColumns

    cols = LabelColumns(prompt=prompt_col, response=response_col, label=label_col)
    info = run_train(labels, model, out, layers or (str(layer) if layer else None), pooling, cols, settings)
    if as_json:
        emit_json(info)
        return
    console.print(
        f"probe head for {model} (layers {info['layers']}, {info['pooling']}, {info['rows']} pairs) → {info['head']}"
    )


@seval_app.command("verdicts")
@handle_errors
def verdicts_cmd(
    run_id: str = typer.Argument(..., help="An S-Eval run id (seval-…)."),
    all_verdicts: bool = typer.Option(False, "--all", help="Every verdict, not only the unsafe ones."),
    csv_out: Path | None = typer.Option(
        None, "--csv", help="Write the verdicts as a relabel CSV (fill corrected_unsafe, then `seval relabel`)."
    ),
    show: int = typer.Option(20, "--show", min=0, help="Verdicts to list in the terminal (riskiest first)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output (every listed verdict)."),
) -> None:
    """Triage a run's flagged verdicts: risk score, taxonomy tags and rationale, riskiest first."""
    settings = bootstrap()
    from trustflow.data.store import ArtifactStore
    from trustflow.tasks.seval.relabel import EXPORT_COLUMNS, run_verdicts, verdicts_csv

    store = ArtifactStore(settings.effective_store_url, settings)
    rows = run_verdicts(store, run_id, flagged_only=not all_verdicts)
    if csv_out is not None:
        csv_out.write_text(verdicts_csv(rows), encoding="utf-8")
    if as_json:
        emit_json(
            {
                "run_id": run_id,
                "csv": str(csv_out) if csv_out else None,
                "verdicts": [{k: r[k] for k in EXPORT_COLUMNS} for r in rows],
            },
            ensure_ascii=False,
        )
        return
    table = Table(title=f"{'verdicts' if all_verdicts else 'unsafe verdicts'} of {run_id} ({len(rows)})")
    for col in ("judgement", "model", "lang", "risk", "tags", "rationale", "prompt"):
        table.add_column(col, overflow="fold")
    for r in rows[:show]:
        table.add_row(
            r["judgement_id"],
            r["model"],
            r["lang"],
            "–" if r["risk_score"] is None else f"{r['risk_score']:.2f}",
            r["risk_tags"].replace(";", "\n"),
            r["rationale"] or "–",
            r["prompt"][:120],
        )
    console.print(table)
    if csv_out is not None:
        console.print(
            f"relabel CSV: {csv_out} (fill corrected_unsafe, then `trustflow seval relabel {csv_out} --annotator NAME`)"
        )


@seval_app.command("relabel")
@handle_errors
def relabel_cmd(
    csv_file: Path = typer.Argument(..., help="CSV of verdicts with a corrected label (from `seval verdicts --csv`)."),
    annotator: str | None = typer.Option(None, "--annotator", help="Who relabelled (else the CSV's annotator column)."),
    run: str | None = typer.Option(
        None, "--run", help="The run the verdicts came from (else the CSV's run_id column)."
    ),
    label_col: str = typer.Option(
        "corrected_unsafe",
        "--label-col",
        help="Column with the person's label: unsafe/safe, 1/0, true/false; empty = not reviewed.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Store relabelled verdicts as a labels dataset (source relabel:<run>) for train-critic / validate-critic."""
    settings = bootstrap()
    from trustflow.data.store import ArtifactStore
    from trustflow.tasks.seval.relabel import import_relabels

    store = ArtifactStore(settings.effective_store_url, settings)
    info = import_relabels(store, csv_file, annotator=annotator, run_id=run, label_col=label_col)
    if as_json:
        emit_json(info.as_dict())
        return
    state = "already stored" if info.skipped else "stored"
    console.print(
        f"{info.tables.get('labels', 0)} relabelled verdicts {state} as {info.dataset_id} ({info.source}); "
        f"train with --labels {info.dataset_id} or --labels {info.source}"
    )


@seval_app.command("generate")
@handle_errors
def generate_cmd(
    leaves: str | None = typer.Option(
        None,
        "--leaves",
        help="Comma-separated taxonomy ids (a non-leaf id means all leaves under it); default: all leaves.",
    ),
    per_leaf: int = typer.Option(6, "--per-leaf", min=1, help="Candidates the tester writes per (leaf, language)."),
    keep: int = typer.Option(2, "--keep", min=1, help="Tests kept per (leaf, language) after selection."),
    langs: str = typer.Option(
        "zh,en",
        "--langs",
        help="Languages; with two and translation on, prompts are written in the first and translated.",
    ),
    tester: str = typer.Option("pkg:smollm2-135m", "--tester", help="Tester model spec."),
    critic: str = typer.Option("default", "--critic", help="Critic spec judging reference answers (hardness)."),
    refs: str = typer.Option(
        "pkg:qwen2.5-1.5b", "--refs", help="Comma-separated reference models for hardness ('' for none)."
    ),
    selection: Path | None = typer.Option(
        None,
        "--selection",
        help="YAML list of selection strategies ({name: ..., options}); default pipeline otherwise.",
    ),
    against: str | None = typer.Option(
        None, "--against", help="Comma-separated suite ids / S-Eval dataset ids new tests must not duplicate."
    ),
    parent: str | None = typer.Option(
        None, "--parent", help="Suite this one refreshes (deduplicated against, recorded as parent)."
    ),
    no_translate: bool = typer.Option(
        False, "--no-translate", help="Write prompts in every language instead of translating."
    ),
    attacks: str | None = typer.Option(
        None, "--attacks", help="Comma-separated attacks (default: all 10; 'none' for base prompts only)."
    ),
    rewrite: bool = typer.Option(
        False, "--rewrite", help="Also LLM-rewritten variants for attacks with a rewrite mode (intent-checked)."
    ),
    seed: int = typer.Option(0, "--seed"),
    max_tokens: int = typer.Option(200, "--max-tokens", min=16, help="Tester answer budget."),
    actors: int = typer.Option(1, "--actors", min=1),
    cache: bool = typer.Option(
        True,
        "--cache/--no-cache",
        help="Reuse earlier answers to identical tester/reference/critic calls from the store's LLM response cache.",
    ),
) -> None:
    """Generate, select and version an S-Eval-style test suite with a tester LLM."""
    import yaml

    settings = bootstrap()
    from trustflow.flows.seval_generate import seval_generate_suite

    specs = None
    if selection is not None:
        if not selection.is_file():
            raise typer.BadParameter(f"{selection}: file not found", param_hint="--selection")
        specs = yaml.safe_load(selection.read_text(encoding="utf-8"))
        if not isinstance(specs, list) or not all(isinstance(s, dict) and "name" in s for s in specs):
            raise typer.BadParameter(
                f"{selection}: expected a YAML list of {{name: strategy, ...options}}", param_hint="--selection"
            )
    attack_list = [] if attacks == "none" else _csv(attacks)
    with flow_session(settings):
        result = seval_generate_suite(
            leaves=_csv(leaves),
            per_leaf=per_leaf,
            keep=keep,
            langs=_csv(langs) or [],
            tester=tester,
            critic=critic,
            refs=_csv(refs) or [],
            selection=specs,
            against=_csv(against) or [],
            parent=parent,
            translate=not no_translate,
            attacks=attack_list,
            rewrite=rewrite,
            seed=seed,
            max_tokens=max_tokens,
            actors=actors,
            cache=cache,
        )
    g, s, f = result["generated"], result["selected"], result["suite"]
    dropped_by = ", ".join(f"{k} {v}" for k, v in sorted(s["dropped_by"].items())) or "none"
    console.print(
        f"suite {result['suite_id']}: {f.get('base', 0)} base prompts ({f.get('translated', 0)} translated), {f.get('attack', 0)} attack prompts"
    )
    console.print(
        f"tester: {g.get('tester_calls', 0)} calls, {g.get('tester_refusals', 0)} refusals, {g.get('items_parsed', 0)} parsed, "
        f"{g.get('items_discarded', 0)} discarded; selection dropped {s['dropped']} ({dropped_by})"
    )
    if s["shortfall"]:
        console.print(f"short of quota: {', '.join(f'{k} ({v})' for k, v in s['shortfall'].items())}")
    from trustflow.tasks.seval.report import cache_line

    line = cache_line(result.get("cache"))
    if line:
        console.print(line)
    from trustflow.tasks.seval.report import usage_lines

    for line in usage_lines(result.get("usage")):
        console.print(line)


suite_app = typer.Typer(no_args_is_help=True, help="Generated test suites.")
seval_app.add_typer(suite_app, name="suite")


@suite_app.command("ls")
@handle_errors
def suite_ls() -> None:
    """Generated suites in the store, with parent and size."""
    settings = bootstrap()
    from trustflow.cli.tables import short_spec
    from trustflow.data.store import ArtifactStore

    store = ArtifactStore(settings.effective_store_url, settings)
    table = Table(title=f"test suites in {store.url}")
    for col in ("suite", "parent", "rows", "base", "attack", "tester", "langs"):
        table.add_column(col)
    for ref, m in store.list_stages(names.SEVAL_GENERATE):
        if ref.stage != names.SUITE:
            continue
        counts = m.attrs.get("counts", {})
        table.add_row(
            ref.run_id,
            str(m.attrs.get("parent_suite") or "–"),
            str(m.rows),
            str(counts.get("base", "")),
            str(counts.get("attack", "")),
            short_spec(str(m.attrs.get("tester", ""))),
            ",".join(m.attrs.get("langs", [])),
        )
    console.print(table)


@suite_app.command("diff")
@handle_errors
def suite_diff(
    a: str = typer.Argument(..., help="Old suite id (or an S-Eval dataset id / seed-suite)."),
    b: str = typer.Argument(..., help="New suite id."),
    show: int = typer.Option(5, "--show", min=0, help="Prompts to list per side."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """What changed between two suites: prompts added/removed per leaf and language, attacks per side."""
    settings = bootstrap()
    from trustflow.data.store import ArtifactStore
    from trustflow.tasks.seval.suite_diff import diff_suites

    store = ArtifactStore(settings.effective_store_url, settings)
    result = diff_suites(a, _any_suite(store, a), b, _any_suite(store, b))
    if as_json:
        emit_json(result.as_dict(), ensure_ascii=False)
        return
    console.print(
        f"{a} → {b}: +{len(result.added)} added, −{len(result.removed)} removed, {result.common} unchanged base prompts"
    )
    table = Table(title="base prompts per leaf and language")
    for col in ("leaf", "lang", a, b, "+", "−"):
        table.add_column(col)
    for g in result.groups:
        if g["added"] or g["removed"]:
            table.add_row(g["leaf_id"], g["lang"], str(g["a"]), str(g["b"]), str(g["added"]), str(g["removed"]))
    console.print(table)
    if result.attacks:
        console.print("attacks: " + ", ".join(f"{x['attack']} {x['a']}→{x['b']}" for x in result.attacks))
    for sign, rows in (("+", result.added[:show]), ("−", result.removed[:show])):
        for r in rows:
            console.print(f"  {sign} [{r['lang']}] {r['prompt'][:120]}")


def _any_suite(store: ArtifactStore, name: str) -> pa.Table:
    """A generated suite by id, or an ingested dataset / the seed suite shaped like one."""
    import pyarrow as pa

    from trustflow.data.store import StageRef
    from trustflow.tasks.seval.suite_generation import read_suite

    if name.startswith("suite-"):
        return read_suite(store, name)
    if name == "seed-suite":
        from trustflow.tasks.seval.suite import seed_suite

        return seed_suite(["zh", "en"], 10_000, [], 0, 0)
    ref = StageRef(names.INGEST, name, names.PROMPTS)
    if store.manifest(ref) is None:
        raise typer.BadParameter(f"{name!r} is not a suite id, dataset id or seed-suite")
    table = store.read_table(ref)
    return pa.table(
        {
            "set": table["set"],
            "lang": table["lang"],
            "prompt": table["prompt"],
            "attack": table["attack"],
            "leaf_id": table["risk_type"],
        }
    )
