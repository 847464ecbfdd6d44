"""Prefect tasks of the fairness flows; each does one step through the store.

Training (flow ``fairness_train``, ``runs/fairness_train/<run_id>/``): ``train_task`` fits one
``FairTrainJob`` on Ray Train (``distributed.py``), writes the checkpoint ``model/model.pt``
(weights only: FairModel state — encoder, head, fairBERTs generator or INLP projection — the
method's discriminators, the job and the class/group order) and then the ``epochs`` stage
(schema ``fairness_train_epochs``) whose manifest marks the run done: a rerun of the same job
finds it and does nothing.

Evaluation (flow ``fairness_evaluate``, ``runs/fairness_evaluate/<run_id>/``):
``metrics_task`` scores every (model, dataset) unit and every model on the template set as Ray
tasks, one Parquet part per unit (``metrics``, schema ``fairness_metrics``, resumable: a unit
whose part exists is not run again, rows are anti-joined by key); ``score_task`` turns them into
the ``leaderboard`` stage and the two plots (``plots/tradeoff.png``: accuracy vs EO gap per
method; ``plots/group_errors.png``: error rate per group); ``publish_summary`` writes the Prefect
artifacts.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from trustflow import names
from trustflow.data.schemas import FAIRNESS_LEADERBOARD, FAIRNESS_METRICS, FAIRNESS_TRAIN_EPOCHS
from trustflow.data.store import ArtifactStore, StageRef
from trustflow.errors import ConfigError, InputError
from trustflow.tasks.artifacts import publish_board
from trustflow.tasks.fairness.distributed import TRANSFER_SEP, FairTrainJob, model_run, transfer_pair
from trustflow.tasks.ray_parts import Chunk, StoreSpec

TRAIN = names.FAIRNESS_TRAIN
EVALUATE = names.FAIRNESS_EVALUATE
ALL = "all"
TRADEOFF_PNG = "tradeoff.png"
GROUP_ERRORS_PNG = "group_errors.png"
_RAY_START = threading.Lock()
BOARD_METRICS = ("accuracy", "macro_f1", "dp_gap", "eo_gap", "fped", "fned")


def digest(payload: Any) -> str:
    """12 hex digits of a JSON payload: same parameters → same run id."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]


def train_run_id(job: FairTrainJob) -> str:
    return f"fair-{job.method.split('?')[0]}-{digest(job.model_dump(mode='json'))}"


def checkpoint_path(store: ArtifactStore, run_id: str) -> str:
    return store.path("runs", TRAIN, run_id, "model", "model.pt")


def train_manifest(store: ArtifactStore, run_id: str) -> Any:
    manifest = store.manifest(StageRef(TRAIN, run_id, names.EPOCHS))
    if manifest is None:
        raise ConfigError(f"model {run_id!r}: no finished fairness_train run of that id in {store.url}")
    return manifest


def load_texts_or_fail(store: ArtifactStore, dataset: str) -> None:
    """A clear error in the driver when ``dataset`` is not an ingested fairness dataset."""
    from trustflow.tasks.ingest.common import stage_ref

    if store.manifest(stage_ref(dataset, names.TEXTS)) is None:
        raise ConfigError(
            f"dataset {dataset!r}: not an ingested fairness dataset in {store.url} (ingest it with kind "
            "redditbias, bug, fairness-texts or eec)"
        )


# ---------------------------------------------------------------- training


@task(name="fairness-train", task_run_name="train-{run_id}", cache_policy=NO_CACHE)
def train_task(spec: StoreSpec, run_id: str, job: dict[str, Any], threads: int = 1) -> dict[str, Any]:
    """Fit one job on Ray Train, or find it done; returns the run's summary."""
    from trustflow.infra.ray_runtime import ensure_ray
    from trustflow.tasks.fairness.distributed import checkpoint_bytes, run_training

    store = spec.open()
    ref = StageRef(TRAIN, run_id, names.EPOCHS)
    manifest = store.manifest(ref)
    if manifest is not None:
        return {**manifest.attrs["summary"], "skipped": True}
    train_job = FairTrainJob(**job)
    with _RAY_START:  # the flow submits every method's job at once: one thread starts Ray
        ensure_ray(store.settings)
    saved = run_training(store, run_id, train_job, threads)
    store.write_bytes_atomic(checkpoint_path(store, run_id), checkpoint_bytes(saved, train_job))
    samples, seconds = int(saved["samples"]), float(saved["seconds"])
    rows = [
        {
            "epoch": int(h["epoch"]),
            "run_id": run_id,
            "method": train_job.method,
            "dataset": train_job.dataset,
            "losses": json.dumps({k: v for k, v in h.items() if k != "epoch"}, sort_keys=True),
            "workers": train_job.workers,
            "samples": samples,
            "seconds": seconds,
            "samples_per_s": samples / seconds if seconds else 0.0,
        }
        for h in saved["history"]
    ]
    summary = {
        "run_id": run_id,
        "method": train_job.method,
        "dataset": train_job.dataset,
        "workers": train_job.workers,
        "classes": list(saved["classes"]),
        "groups": list(saved["groups"]),
        "train_rows": int(saved["train_rows"]),
        "samples_per_s": samples / seconds if seconds else 0.0,
        "checkpoint": f"runs/{TRAIN}/{run_id}/model/model.pt",
        "epochs": rows,
    }
    store.write_stage(
        ref,
        FAIRNESS_TRAIN_EPOCHS,
        pa.Table.from_pylist(rows, FAIRNESS_TRAIN_EPOCHS.schema),
        ["epoch"],
        {"job": train_job.model_dump(mode="json"), "summary": summary},
    )
    return {**summary, "skipped": False}


def publish_training(results: Sequence[Mapping[str, Any]], store_url: str) -> None:
    """One table row per trained method and the checkpoints' locations."""
    table = [
        {
            "method": r["method"],
            "run_id": r["run_id"],
            "workers": r["workers"],
            "train_rows": r["train_rows"],
            "samples_per_s": round(float(r["samples_per_s"]), 1),
            "final_losses": r["epochs"][-1]["losses"] if r["epochs"] else "",
            "resumed": r["skipped"],
        }
        for r in results
    ]
    create_table_artifact(key="fairness-train", table=table, description="fairness fine-tuning runs")
    lines = ["# Fairness fine-tuning", "", "| method | run | samples/s | checkpoint |", "|---|---|---:|---|"]
    lines += [
        f"| {r['method']} | `{r['run_id']}` | {float(r['samples_per_s']):.1f} | `{store_url}/{r['checkpoint']}` |"
        for r in results
    ]
    create_markdown_artifact(key="fairness-train-summary", markdown="\n".join(lines))


def checkpoint_payload(data: bytes) -> dict[str, Any] | None:
    """The payload of a fairness checkpoint (``fairness_train``'s ``model.pt``), else None."""
    import io

    import torch

    try:
        payload = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except Exception:  # noqa: BLE001 - not a weights-only torch file: not ours
        return None
    keys = {"model", "job", "classes", "groups"}
    return payload if isinstance(payload, dict) and keys <= set(payload) else None


def register_checkpoint(store: ArtifactStore, key: str, where: str) -> str:
    """A fairness checkpoint anywhere in the store (e.g. dropped under ``models/``) as a
    ``fairness_train`` run named by its bytes, so evaluation reads it like a trained run;
    registering the same bytes twice is a no-op."""
    try:
        data = store.read_bytes(store.path(key))
    except (FileNotFoundError, OSError):
        raise InputError(f"{where}: checkpoint {key} not found in {store.url}") from None
    payload = checkpoint_payload(data)
    if payload is None:
        raise InputError(f"{where}: {key} is not a fairness_train checkpoint (model.pt with job, classes, groups)")
    from trustflow.models.text.encoder import PACKAGED_ENCODERS

    encoder = str(payload["job"].get("encoder", ""))
    if encoder not in PACKAGED_ENCODERS:
        # the job inside a dropped checkpoint is untrusted: it may not point the loader at a local folder
        raise InputError(
            f"{where}: checkpoint {key} names encoder {encoder!r}; a checkpoint from the bucket must use a "
            f"packaged encoder ({', '.join(PACKAGED_ENCODERS)})"
        )
    run_id = f"fair-import-{hashlib.sha256(data).hexdigest()[:12]}"
    ref = StageRef(TRAIN, run_id, names.EPOCHS)
    if store.manifest(ref) is None:
        job = FairTrainJob(**payload["job"])
        store.write_bytes_atomic(checkpoint_path(store, run_id), data)
        summary = {
            "run_id": run_id,
            "method": job.method,
            "dataset": job.dataset,
            "workers": job.workers,
            "classes": list(payload["classes"]),
            "groups": list(payload["groups"]),
            "train_rows": 0,
            "samples_per_s": 0.0,
            "checkpoint": f"runs/{TRAIN}/{run_id}/model/model.pt",
            "epochs": [],
            "imported_from": key,
        }
        store.write_stage(
            ref,
            FAIRNESS_TRAIN_EPOCHS,
            FAIRNESS_TRAIN_EPOCHS.schema.empty_table(),
            ["epoch"],
            {"job": job.model_dump(mode="json"), "summary": summary},
        )
    return run_id


# ---------------------------------------------------------------- evaluation


def plan_units(
    store: ArtifactStore,
    models: Sequence[str],
    datasets: Sequence[str] | None,
    transfer: Sequence[str],
    eec: str | None,
    limit: int | None,
    eec_pairs: int,
    n_boot: int,
    seed: int,
) -> list[dict[str, Any]]:
    """Every unit of work, checked in the driver (one clear error before any Ray task):
    unknown runs, a dataset whose classes differ from a model's, a malformed transfer pair."""
    from trustflow.tasks.fairness.distributed import load_texts

    runs: dict[str, dict[str, Any]] = {}  # label -> {checkpoint runs, method, classes, datasets}
    for m in models:
        run = model_run(m)
        s = train_manifest(store, run).attrs["summary"]
        runs[run] = {
            "model": run,
            "generator": None,
            "method": s["method"],
            "classes": s["classes"],
            "own": s["dataset"],
        }
    for pair in transfer:
        gen, target = transfer_pair(pair)
        g, t = train_manifest(store, gen).attrs, train_manifest(store, target).attrs
        if not g["job"]["method"].startswith("fairberts"):
            raise ConfigError(f"transfer {pair!r}: {gen} is a {g['job']['method']} run, not fairberts")
        if g["summary"]["classes"] != t["summary"]["classes"]:
            raise ConfigError(f"transfer {pair!r}: the two runs were trained on different classes")
        label = f"{gen}{TRANSFER_SEP}{target}"
        runs[label] = {
            "model": target,
            "generator": gen,
            "method": f"transfer:{g['job']['method']}{TRANSFER_SEP}{t['job']['method']}",
            "classes": t["summary"]["classes"],
            "own": t["summary"]["dataset"],
        }
    if not runs:
        raise ConfigError("no models to evaluate: give fairness_train run ids (or transfer pairs)")
    units: list[dict[str, Any]] = []
    classes_of: dict[str, list[str]] = {}
    for label, r in runs.items():
        for ds in datasets or [r["own"]]:
            if ds not in classes_of:
                classes_of[ds] = load_texts(store, ds, None)[0].classes
            if classes_of[ds] != r["classes"]:
                raise ConfigError(
                    f"dataset {ds!r}: classes {classes_of[ds]} differ from model {label}'s {r['classes']}"
                )
            units.append({**r, "label": label, "kind": "texts", "dataset": ds})
        if eec:
            units.append({**r, "label": label, "kind": "eec", "dataset": eec})
    for u in units:
        u.update(limit=limit, eec_pairs=eec_pairs, n_boot=n_boot, seed=seed)
        u.pop("classes")
        u.pop("own")
    return units


def _row(u: Mapping[str, Any], group: str, metric: str, est: Mapping[str, float] | float, n: int) -> dict[str, Any]:
    def clean(v: Any) -> float | None:
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)

    value, lo, hi = (est["value"], est["lo"], est["hi"]) if isinstance(est, Mapping) else (est, None, None)
    return {
        "row_key": "|".join([u["label"], u["dataset"], group, metric]),
        "model": u["label"],
        "method": u["method"],
        "dataset": u["dataset"],
        "group": group,
        "metric": metric,
        "value": clean(value),
        "lo": clean(lo),
        "hi": clean(hi),
        "n": int(n),
    }


def unit_rows(spec: StoreSpec, u: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The metric rows of one unit: a model on a dataset's test split, or on the template set."""
    import numpy as np
    import torch

    from trustflow.tasks.fairness.distributed import load_checkpoint, load_texts, sample
    from trustflow.tasks.fairness.metrics import fairness_metrics, flip_rate, leakage
    from trustflow.tasks.fairness.model import attach
    from trustflow.tasks.fairness.train import predict

    torch.set_num_threads(1)
    store = spec.open()
    model, tokenizer, _ = load_checkpoint(store.read_bytes(checkpoint_path(store, u["model"])))
    if u["generator"]:
        gen, _, _ = load_checkpoint(store.read_bytes(checkpoint_path(store, u["generator"])))
        model = attach(gen.generator, model)
        model.eval()
    if u["kind"] == "eec":
        data, _ = load_texts(store, u["dataset"], None)
        pairs = sorted({p for p in data.pair_ids or [] if p})
        keep = set(np.random.default_rng(u["seed"]).permutation(pairs)[: u["eec_pairs"]].tolist())
        data = data.subset(np.array([i for i, p in enumerate(data.pair_ids or []) if p in keep], dtype=np.int64))
        logits, _ = predict(model, data, tokenizer)
        est = flip_rate(logits.argmax(1), data.pair_ids or [], u["n_boot"], u["seed"])
        return [_row(u, ALL, "flip_rate", est.as_dict(), len(keep))]
    data, _ = load_texts(store, u["dataset"], "test")
    data = sample(data, u["limit"], u["seed"])
    logits, reps = predict(model, data, tokenizer)
    m = fairness_metrics(data.y, logits.argmax(1), data.z, len(data.classes), data.groups, u["n_boot"], u["seed"])
    rows = [_row(u, ALL, k, e, len(data)) for k, e in m["overall"].items()]
    for group, per in m["groups"].items():
        rows += [_row(u, group, k, e, per["n"]) for k, e in per.items() if k != "n"]
    try:
        leak = leakage(reps, data.z, u["seed"])
    except (InputError, ValueError):  # one group, or a group too small to stratify: leakage undefined
        leak = {"leakage": float("nan"), "probe_accuracy": float("nan"), "majority_rate": float("nan")}
    rows += [_row(u, ALL, k, v, len(data)) for k, v in leak.items()]
    return rows


def build_unit_table(payload: tuple[StoreSpec, dict[str, Any]]) -> pa.Table:
    spec, unit = payload
    return pa.Table.from_pylist(unit_rows(spec, unit), FAIRNESS_METRICS.schema)


@task(name="fairness-metrics", cache_policy=NO_CACHE)
def metrics_task(spec: StoreSpec, run_id: str, units: list[dict[str, Any]], parallel: bool = True) -> dict[str, Any]:
    """Every unit the metrics stage lacks, one Ray task (and one part) each; then the commit."""
    from trustflow.infra.ray_runtime import ensure_ray
    from trustflow.tasks.ray_parts import plan_chunks, write_parts_on_ray

    store = spec.open()
    ref = StageRef(EVALUATE, run_id, names.METRICS)
    chunks = [Chunk(f"unit-{digest(u)}", (spec, u)) for u in units]
    writer, todo, stats = plan_chunks(store, ref, FAIRNESS_METRICS, ["row_key"], chunks)
    if parallel and todo:  # a finished run does not even start Ray
        ensure_ray(store.settings)
        stats = write_parts_on_ray(store, ref, FAIRNESS_METRICS, ["row_key"], chunks, build_unit_table)
    else:
        for c in todo:
            table = writer.missing(build_unit_table(c.payload))
            if table.num_rows:
                writer.write_part(table, c.part_id)
            stats["rows_written"] += table.num_rows
    store.writer(ref, FAIRNESS_METRICS, ["row_key"]).commit({"units": len(units)})
    return {"metrics": str(ref), **stats}


def leaderboard(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per (model, dataset) from the long metric rows; the model's flip rate joins every row."""
    flips = {r["model"]: r["value"] for r in rows if r["metric"] == "flip_rate"}
    overall: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        if r["group"] != ALL or r["metric"] == "flip_rate":
            continue
        cell = overall.setdefault(
            (r["model"], r["dataset"]),
            {"model": r["model"], "method": r["method"], "dataset": r["dataset"], "rows": r["n"]},
        )
        cell[r["metric"]] = r["value"]
        if r["metric"] in ("accuracy", "eo_gap"):
            cell[f"{r['metric']}_lo"], cell[f"{r['metric']}_hi"] = r["lo"], r["hi"]
    board = []
    for (model, dataset), cell in sorted(overall.items()):
        row = {k: cell.get(k) for k in FAIRNESS_LEADERBOARD.schema.names}
        row.update(row_key=f"{model}|{dataset}", flip_rate=flips.get(model))
        board.append(row)
    return board


@task(name="fairness-score", cache_policy=NO_CACHE)
def score_task(spec: StoreSpec, run_id: str, metrics: str) -> list[dict[str, Any]]:
    """The leaderboard stage and the plots of one evaluation run."""
    from trustflow.tasks.fairness import plots

    store = spec.open()
    rows = store.read_table(StageRef(EVALUATE, run_id, names.METRICS)).to_pylist()
    board = leaderboard(rows)
    store.write_stage(
        StageRef(EVALUATE, run_id, names.LEADERBOARD),
        FAIRNESS_LEADERBOARD,
        pa.Table.from_pylist(board, FAIRNESS_LEADERBOARD.schema),
        ["row_key"],
        {"metrics": metrics},
    )
    for name, png in ((TRADEOFF_PNG, plots.tradeoff(board)), (GROUP_ERRORS_PNG, plots.group_errors(rows))):
        store.write_bytes_atomic(store.path("runs", EVALUATE, run_id, "plots", name), png)
    return board


def _fmt(v: Any) -> str:
    return "–" if v is None else f"{v:.3f}"


def markdown_table(board: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = [
        "| model | method | dataset | accuracy [95 % CI] | EO gap [95 % CI] | DP gap | flip rate | leakage |",
        "|---|---|---|---|---|---:|---:|---:|",
    ]
    for r in board:
        lines.append(
            f"| {r['model']} | {r['method']} | {r['dataset']} | {_fmt(r['accuracy'])} "
            f"[{_fmt(r['accuracy_lo'])}, {_fmt(r['accuracy_hi'])}] | {_fmt(r['eo_gap'])} "
            f"[{_fmt(r['eo_gap_lo'])}, {_fmt(r['eo_gap_hi'])}] | {_fmt(r['dp_gap'])} | {_fmt(r['flip_rate'])} "
            f"| {_fmt(r['leakage'])} |"
        )
    return lines


def publish_summary(store_url: str, run_id: str, board: Sequence[Mapping[str, Any]]) -> None:
    """The run's Prefect artifacts: the leaderboard table and a markdown summary."""
    publish_board(
        "fairness",
        f"Fairness `{run_id}`",
        f"fairness evaluation {run_id}",
        board,
        markdown_table(board),
        f"{store_url}/runs/{EVALUATE}/{run_id}",
        (TRADEOFF_PNG, GROUP_ERRORS_PNG),
    )


__all__ = [
    "ALL",
    "BOARD_METRICS",
    "GROUP_ERRORS_PNG",
    "TRADEOFF_PNG",
    "TRANSFER_SEP",
    "build_unit_table",
    "checkpoint_path",
    "digest",
    "leaderboard",
    "load_texts_or_fail",
    "markdown_table",
    "metrics_task",
    "plan_units",
    "publish_summary",
    "publish_training",
    "checkpoint_payload",
    "register_checkpoint",
    "score_task",
    "train_run_id",
    "train_task",
    "unit_rows",
]
