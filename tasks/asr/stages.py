"""Prefect tasks of the ASR flows; each does one step through the store.

Training (flow ``asr_train``, ``runs/asr_train/<run_id>/``): ``train_task`` fits one
``ASRTrainJob`` on Ray Train (``distributed.py``), writes ``model/model.pt`` (weights only: the
model state and the job) and then the ``epochs`` stage (schema ``asr_train_epochs``) whose
manifest marks the run done: a rerun of the same job finds it and does nothing.

Evaluation (flow ``asr_evaluate``, ``runs/asr_evaluate/<run_id>/``): ``results_task``
transcribes every unit — (model, dataset, shift, shard of ``shard`` utterances) — as one Ray
task and one Parquet part of the ``results`` stage (schema ``asr_results``, one row per
utterance, key ``model|domain|utt_id``; a unit whose part exists is not run again and rows are
anti-joined by key, so a re-run never duplicates). ``score_task`` turns the rows into the
``leaderboard`` stage (corpus WER with a bootstrap interval, PER, real-time factor per (model,
domain)) and ``plots/wer_by_domain.png``; ``publish_summary`` writes the Prefect artifacts.
A shift is applied per utterance with a seed drawn from (utt_id, shift), so every model hears
exactly the same shifted audio.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from trustflow import names
from trustflow.data.schemas import ASR_LEADERBOARD, ASR_RESULTS, ASR_TRAIN_EPOCHS
from trustflow.data.store import ArtifactStore, StageRef
from trustflow.errors import ConfigError
from trustflow.tasks.asr.distributed import ASRTrainJob, model_run
from trustflow.tasks.ray_parts import Chunk, StoreSpec

TRAIN = names.ASR_TRAIN
EVALUATE = names.ASR_EVALUATE
CLEAN = "clean"
OOD_MEAN = "ood-mean"
WER_PNG = "wer_by_domain.png"
_RAY_START = threading.Lock()


def digest(payload: Any) -> str:
    """12 hex digits of a JSON payload: same parameters → same run id."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]


def train_run_id(job: ASRTrainJob) -> str:
    return f"asr-{job.method.split('?')[0]}-{digest(job.model_dump(mode='json'))}"


def checkpoint_path(store: ArtifactStore, run_id: str) -> str:
    return store.path("runs", TRAIN, run_id, "model", "model.pt")


def train_manifest(store: ArtifactStore, run_id: str) -> Any:
    manifest = store.manifest(StageRef(TRAIN, run_id, names.EPOCHS))
    if manifest is None:
        raise ConfigError(f"model {run_id!r}: no finished asr_train run of that id in {store.url}")
    return manifest


def utterances_or_fail(store: ArtifactStore, dataset: str) -> Any:
    """The ``utterances`` manifest of ``dataset``, or one clear error in the driver."""
    from trustflow.tasks.ingest.common import stage_ref

    manifest = store.manifest(stage_ref(dataset, names.UTTERANCES))
    if manifest is None:
        raise ConfigError(
            f"dataset {dataset!r}: not an ingested speech dataset in {store.url} (ingest it with kind "
            "espeak, pocketsphinx or speech-folder)"
        )
    return manifest


# ---------------------------------------------------------------- training


@task(name="asr-train", task_run_name="train-{run_id}", cache_policy=NO_CACHE)
def train_task(spec: StoreSpec, run_id: str, job: dict[str, Any], threads: int = 1) -> dict[str, Any]:
    """Fit one job on Ray Train, or find it done; returns the run's summary."""
    from trustflow.infra.ray_runtime import ensure_ray
    from trustflow.tasks.asr.distributed import checkpoint_bytes, run_training

    store = spec.open()
    ref = StageRef(TRAIN, run_id, names.EPOCHS)
    manifest = store.manifest(ref)
    if manifest is not None:
        return {**manifest.attrs["summary"], "skipped": True}
    train_job = ASRTrainJob(**job)
    with _RAY_START:  # the flow submits every method's job at once: one thread starts Ray
        ensure_ray(store.settings)
    saved = run_training(store, run_id, train_job, threads)
    store.write_bytes_atomic(checkpoint_path(store, run_id), checkpoint_bytes(saved["model"], train_job))
    utts, seconds = int(saved["utterances"]), float(saved["seconds"])
    rate = utts / seconds if seconds else 0.0
    rows = [
        {
            "epoch": int(h["epoch"]),
            "run_id": run_id,
            "method": train_job.method,
            "model": train_job.model,
            "dataset": train_job.dataset,
            "losses": json.dumps({k: v for k, v in h.items() if k != "epoch"}, sort_keys=True),
            "workers": train_job.workers,
            "utterances": utts,
            "seconds": seconds,
            "utterances_per_s": rate,
        }
        for h in saved["history"]
    ]
    summary = {
        "run_id": run_id,
        "method": train_job.method,
        "model": train_job.model,
        "dataset": train_job.dataset,
        "workers": train_job.workers,
        "train_rows": int(saved["train_rows"]),
        "utterances_per_s": rate,
        "checkpoint": f"runs/{TRAIN}/{run_id}/model/model.pt",
        "epochs": rows,
    }
    store.write_stage(
        ref,
        ASR_TRAIN_EPOCHS,
        pa.Table.from_pylist(rows, ASR_TRAIN_EPOCHS.schema),
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
            "utterances_per_s": round(float(r["utterances_per_s"]), 1),
            "final_losses": r["epochs"][-1]["losses"] if r["epochs"] else "",
            "resumed": r["skipped"],
        }
        for r in results
    ]
    create_table_artifact(key="asr-train", table=table, description="ASR training runs")
    lines = ["# ASR training", "", "| method | run | utterances/s | checkpoint |", "|---|---|---:|---|"]
    lines += [
        f"| {r['method']} | `{r['run_id']}` | {float(r['utterances_per_s']):.1f} | `{store_url}/{r['checkpoint']}` |"
        for r in results
    ]
    create_markdown_artifact(key="asr-train-summary", markdown="\n".join(lines))


# ---------------------------------------------------------------- evaluation


def domain_of(row_domain: str, shift: str) -> str:
    """The evaluation domain: the row's own domain clean, else ``domain+shift``."""
    return row_domain if shift == CLEAN else f"{row_domain}+{shift}"


def shift_seed(utt_id: str, shift: str, seed: int) -> int:
    """The per-utterance shift seed: the same for every model (same shifted audio)."""
    return int(hashlib.sha256(f"{seed}|{shift}|{utt_id}".encode()).hexdigest()[:8], 16)


def plan_units(
    store: ArtifactStore,
    models: Sequence[str],
    datasets: Sequence[str],
    shifts: Sequence[str],
    clean_only: Sequence[str],
    limit: int | None,
    shard: int,
    seed: int,
) -> list[dict[str, Any]]:
    """Every unit of work, checked in the driver (one clear error before any Ray task): unknown
    runs, datasets or shift specs. ``datasets`` are evaluated clean (in domain) and under each
    shift; ``clean_only`` datasets (e.g. real recordings) only as they are, out of domain."""
    import numpy as np

    from trustflow.data.speech.phones import lexicon_for
    from trustflow.tasks.asr.shifts.base import SPEECH_SHIFTS
    from trustflow.tasks.ingest.common import stage_ref

    if shard < 1:
        raise ConfigError("shard must be >= 1")
    if not datasets and not clean_only:
        raise ConfigError("no datasets to evaluate on: give ingested speech dataset ids")
    for s in shifts:
        if s != CLEAN:
            SPEECH_SHIFTS.create(s)
    runs = []
    for m in models:
        run = model_run(m)
        runs.append({"model": run, "method": train_manifest(store, run).attrs["summary"]["method"]})
    if not runs:
        raise ConfigError("no models to evaluate: give asr_train run ids")
    plan: list[tuple[str, str, bool]] = []  # (dataset, shift, ood)
    for ds in dict.fromkeys(datasets):
        plan += [(ds, CLEAN, False)] + [(ds, s, True) for s in dict.fromkeys(shifts) if s != CLEAN]
    plan += [(ds, CLEAN, True) for ds in dict.fromkeys(clean_only)]
    ids: dict[str, list[str]] = {}
    words: set[str] = set()
    for ds in {p[0] for p in plan}:
        utterances_or_fail(store, ds)
        table = store.read_table(stage_ref(ds, names.UTTERANCES), columns=["utt_id", "transcript"])
        keys = sorted(table.column("utt_id").to_pylist())
        if limit is not None and len(keys) > limit:
            keys = sorted(np.random.default_rng(seed).permutation(keys)[:limit].tolist())
        ids[ds] = keys
        keep = set(keys)
        for uid, text in zip(table.column("utt_id").to_pylist(), table.column("transcript").to_pylist(), strict=True):
            if uid in keep:
                words.update(text.split())
    lexicon = {w: list(p) for w, p in lexicon_for(sorted(words)).items()}
    units = []
    for r in runs:
        for ds, shift, ood in plan:
            for lo in range(0, len(ids[ds]), shard):
                units.append(
                    {**r, "dataset": ds, "shift": shift, "ood": ood, "utt_ids": ids[ds][lo : lo + shard], "seed": seed}
                )
    for u in units:
        u["lexicon"] = lexicon
    return units


def unit_rows(spec: StoreSpec, u: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Transcribe one unit's utterances (shifted) with one checkpoint; one row per utterance."""
    import numpy as np
    import pyarrow.compute as pc
    import torch

    from trustflow.data.speech.utterances import utterances_from_table
    from trustflow.models.speech.ctc import LexiconDecoder, edit_distance
    from trustflow.tasks.asr.distributed import load_checkpoint
    from trustflow.tasks.asr.shifts.base import SPEECH_SHIFTS
    from trustflow.tasks.asr.train import transcribe
    from trustflow.tasks.ingest.common import stage_ref

    torch.set_num_threads(1)
    store = spec.open()
    model, _ = load_checkpoint(store.read_bytes(checkpoint_path(store, u["model"])))
    table = store.read_table(stage_ref(u["dataset"], names.UTTERANCES))
    table = table.filter(pc.is_in(table.column("utt_id"), pa.array(u["utt_ids"])))
    rows = sorted(utterances_from_table(table), key=lambda r: r.utt_id)
    waves: list[np.ndarray] = [r.audio for r in rows]
    if u["shift"] != CLEAN:
        shift = SPEECH_SHIFTS.create(u["shift"])
        waves = [
            shift.apply(torch.as_tensor(w)[None], shift_seed(r.utt_id, u["shift"], u["seed"]))[0].numpy()
            for w, r in zip(waves, rows, strict=True)
        ]
    decoder = LexiconDecoder({w: tuple(p) for w, p in u["lexicon"].items()})
    start = time.perf_counter()
    hyps = transcribe(model, waves, decoder)
    spent = time.perf_counter() - start
    total_s = sum(len(w) for w in waves) / 16000 or 1.0
    out = []
    for r, w, (phones, words) in zip(rows, waves, hyps, strict=True):
        ref_p = [p for p in r.phones if p != "|"]
        hyp_p = [p for p in phones if p != "|"]
        domain = domain_of(r.domain, u["shift"])
        out.append(
            {
                "row_key": f"{u['model']}|{domain}|{r.utt_id}",
                "model": u["model"],
                "method": u["method"],
                "dataset": u["dataset"],
                "domain": domain,
                "shift": u["shift"],
                "utt_id": r.utt_id,
                "reference": r.transcript,
                "hypothesis": words,
                "hyp_phones": " ".join(phones),
                "word_errors": edit_distance(r.transcript.split(), words.split()),
                "words": len(r.transcript.split()),
                "phone_errors": edit_distance(ref_p, hyp_p),
                "phones": len(ref_p),
                "audio_s": len(w) / 16000,
                "decode_s": spent * (len(w) / 16000) / total_s,
            }
        )
    return out


def build_unit_table(payload: tuple[StoreSpec, dict[str, Any]]) -> pa.Table:
    spec, unit = payload
    return pa.Table.from_pylist(unit_rows(spec, unit), ASR_RESULTS.schema)


def unit_part_id(u: Mapping[str, Any]) -> str:
    return "unit-" + digest({k: v for k, v in u.items() if k != "lexicon"} | {"lex": digest(u["lexicon"])})


@task(name="asr-results", cache_policy=NO_CACHE)
def results_task(spec: StoreSpec, run_id: str, units: list[dict[str, Any]], parallel: bool = True) -> dict[str, Any]:
    """Every unit the results stage lacks, one Ray task (and one part) each; then the commit."""
    from trustflow.infra.ray_runtime import ensure_ray
    from trustflow.tasks.ray_parts import plan_chunks, write_parts_on_ray

    store = spec.open()
    ref = StageRef(EVALUATE, run_id, names.RESULTS)
    chunks = [Chunk(unit_part_id(u), (spec, u)) for u in units]
    writer, todo, stats = plan_chunks(store, ref, ASR_RESULTS, ["row_key"], chunks)
    if parallel and todo:  # a finished run does not even start Ray
        ensure_ray(store.settings)
        stats = write_parts_on_ray(store, ref, ASR_RESULTS, ["row_key"], chunks, build_unit_table)
    else:
        for c in todo:
            table = writer.missing(build_unit_table(c.payload))
            if table.num_rows:
                writer.write_part(table, c.part_id)
            stats["rows_written"] += table.num_rows
    ood = {domain_of_unit(u): u["ood"] for u in units}
    store.writer(ref, ASR_RESULTS, ["row_key"]).commit({"units": len(units), "ood": ood})
    return {"results": str(ref), **stats}


def domain_of_unit(u: Mapping[str, Any]) -> str:
    """The unit's (dataset, shift) label the ``ood`` flag is kept under."""
    return f"{u['dataset']}|{u['shift']}"


def leaderboard(
    rows: Sequence[Mapping[str, Any]], ood: Mapping[str, bool], samples: int = 500, seed: int = 0
) -> list[dict[str, Any]]:
    """One row per (model, domain) from the per-utterance rows, plus one ``ood-mean`` row per
    model: the unweighted mean WER of its out-of-domain domains (as ESB averages its sets)."""
    import numpy as np

    from trustflow.tasks.asr.metrics import rate_from_counts

    cells: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for r in rows:
        cells.setdefault((r["model"], r["domain"]), []).append(r)
    board = []
    for (model, domain), rs in sorted(cells.items()):
        w = rate_from_counts(
            np.array([r["word_errors"] for r in rs]), np.array([r["words"] for r in rs]), samples, seed
        )
        p = rate_from_counts(np.array([r["phone_errors"] for r in rs]), np.array([r["phones"] for r in rs]), 0)
        audio = sum(r["audio_s"] for r in rs)
        board.append(
            {
                "row_key": f"{model}|{domain}",
                "model": model,
                "method": rs[0]["method"],
                "domain": domain,
                "ood": bool(ood.get(f"{rs[0]['dataset']}|{rs[0]['shift']}", True)),
                "utterances": len(rs),
                "wer": w.rate,
                "wer_lo": w.low,
                "wer_hi": w.high,
                "per": p.rate,
                "rtf": sum(r["decode_s"] for r in rs) / audio if audio else None,
            }
        )
    for model in sorted({b["model"] for b in board}):
        mine = [b for b in board if b["model"] == model and b["ood"]]
        if mine:
            board.append(
                {
                    "row_key": f"{model}|{OOD_MEAN}",
                    "model": model,
                    "method": mine[0]["method"],
                    "domain": OOD_MEAN,
                    "ood": True,
                    "utterances": sum(b["utterances"] for b in mine),
                    "wer": float(np.mean([b["wer"] for b in mine])),
                    "wer_lo": None,
                    "wer_hi": None,
                    "per": float(np.mean([b["per"] for b in mine])),
                    "rtf": None,
                }
            )
    return board


@task(name="asr-score", cache_policy=NO_CACHE)
def score_task(spec: StoreSpec, run_id: str, results: str, seed: int = 0) -> list[dict[str, Any]]:
    """The leaderboard stage and the WER plot of one evaluation run."""
    from trustflow.tasks.asr import plots

    store = spec.open()
    ref = StageRef(EVALUATE, run_id, names.RESULTS)
    manifest = store.manifest(ref)
    rows = store.read_table(ref).to_pylist()
    board = leaderboard(rows, manifest.attrs.get("ood", {}) if manifest else {}, seed=seed)
    store.write_stage(
        StageRef(EVALUATE, run_id, names.LEADERBOARD),
        ASR_LEADERBOARD,
        pa.Table.from_pylist(board, ASR_LEADERBOARD.schema),
        ["row_key"],
        {"results": results},
    )
    store.write_bytes_atomic(store.path("runs", EVALUATE, run_id, "plots", WER_PNG), plots.wer_by_domain(board))
    return board


def pivot(board: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """(domains in column order, one row per model {model, method, domain: WER}): in-domain
    domains first, then out-of-domain ones, ``ood-mean`` last."""
    order = sorted({(b["ood"], b["domain"] == OOD_MEAN, b["domain"]) for b in board})
    domains = [d for _, _, d in order]
    models: dict[str, dict[str, Any]] = {}
    for b in board:
        models.setdefault(b["model"], {"model": b["model"], "method": b["method"]})[b["domain"]] = b["wer"]
    return domains, list(models.values())


def _pct(v: Any) -> str:
    return "–" if v is None else f"{100 * v:.1f}"


def markdown_table(board: Sequence[Mapping[str, Any]]) -> list[str]:
    domains, rows = pivot(board)
    lines = ["| method | model | " + " | ".join(domains) + " |", "|---|---|" + "---:|" * len(domains)]
    lines += [f"| {r['method']} | {r['model']} | " + " | ".join(_pct(r.get(d)) for d in domains) + " |" for r in rows]
    return lines


def publish_summary(store_url: str, run_id: str, board: Sequence[Mapping[str, Any]]) -> None:
    """The run's Prefect artifacts: the leaderboard table and a markdown WER table."""
    create_table_artifact(
        key="asr-leaderboard",
        table=[
            {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items() if k != "row_key"} for r in board
        ],
        description=f"ASR evaluation {run_id}",
    )
    lines = [f"# ASR `{run_id}`: WER (%) per domain", "", *markdown_table(board), ""]
    lines.append(f"leaderboard: `{store_url}/runs/{EVALUATE}/{run_id}/{names.LEADERBOARD}/`")
    lines.append(f"plot: `{store_url}/runs/{EVALUATE}/{run_id}/plots/{WER_PNG}`")
    create_markdown_artifact(key="asr-summary", markdown="\n".join(lines))


__all__ = [
    "CLEAN",
    "OOD_MEAN",
    "WER_PNG",
    "build_unit_table",
    "checkpoint_path",
    "digest",
    "domain_of",
    "leaderboard",
    "markdown_table",
    "pivot",
    "plan_units",
    "publish_summary",
    "publish_training",
    "results_task",
    "score_task",
    "shift_seed",
    "train_run_id",
    "train_task",
    "unit_rows",
    "utterances_or_fail",
]
