"""ASR training on Ray Train: N data-parallel workers, one weights-only checkpoint in the store.

One ``TorchTrainer`` run per job (``ASRTrainJob``: dataset, method spec, model spec, training
config, workers). Each worker reads the ``utterances`` stage itself, builds the same model from
the same seed and runs ``tasks/asr/train.fit`` on its slice of every global batch. The loss is
divided by the global batch size and the gradients are *summed* over the gloo group
(``sum_gradients``, one flat all-reduce) before the global gradient is clipped and every worker
takes the same step, so the workers stay identical without broadcasting weights and equal one
process with the N-times batch; DDP's wrapper is not used because WAPAT calls the model's parts
(``features``, ``head``) directly, which its forward hook would not see. Batch-norm statistics
stay per worker (no SyncBatchNorm) and each worker draws its own augmentations.

Rank 0 reports the checkpoint: the model's ``state_dict``, the history and counts. Resuming is
per job: the flow's stage skips a job whose ``epochs`` stage exists; an interrupted job trains
again from the start (jobs here are minutes).
"""

from __future__ import annotations

import io
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from trustflow import names
from trustflow.errors import ConfigError
from trustflow.tasks.asr.methods.base import TrainConfig

CHECKPOINT_FILE = "model.pt"
DEFAULT_MODEL = "conv-ctc?width=96&blocks=3"


class ASRTrainJob(BaseModel):
    """Everything that defines one ASR training run (its hash is the run id)."""

    model_config = ConfigDict(extra="forbid")

    dataset: str  # ingested speech dataset id (its ``utterances`` stage)
    method: str = "plain"  # ASR_METHODS spec, e.g. wapat?eps=0.01
    model: str = DEFAULT_MODEL  # ASR_MODELS spec
    train: TrainConfig = Field(default_factory=TrainConfig)
    domains: list[str] | None = None  # train only on rows of these domains (None: all)
    limit: int | None = Field(None, ge=1)  # at most this many utterances (seeded sample)
    workers: int = Field(1, ge=1)


def make_jobs(
    dataset: str, methods: list[str], job_options: dict[str, Any], train_options: dict[str, Any]
) -> list[ASRTrainJob]:
    """One validated job per method (a bad method/model spec or option is one error, nothing started)."""
    from trustflow.models.speech.ctc import ASR_MODELS
    from trustflow.registry import validate_options
    from trustflow.tasks.asr.methods.base import ASR_METHODS

    if not methods:
        raise ConfigError("methods: give at least one ASR method (" + ", ".join(ASR_METHODS.names()) + ")")
    jobs = []
    for method in dict.fromkeys(methods):
        ASR_METHODS.create(method)
        job = validate_options(
            "ASR training job",
            ASRTrainJob,
            {"dataset": dataset, "method": method, **job_options, "train": train_options},
        )
        ASR_MODELS.create(job.model)
        jobs.append(job)
    return jobs


def model_run(text: str) -> str:
    """``run:<id>`` or ``<id>`` → the asr_train run id."""
    run = text.removeprefix("run:").strip("/")
    if not run or "/" in run:
        raise ConfigError(f"model {text!r}: give an asr_train run id (run:<id>)")
    return run


def load_rows(store: Any, job: ASRTrainJob) -> list[Any]:
    """The job's training utterances: the dataset's rows, domain-filtered, seeded sample."""
    import numpy as np

    from trustflow.data.speech.utterances import utterances_from_table
    from trustflow.tasks.ingest.common import stage_ref

    ref = stage_ref(job.dataset, names.UTTERANCES)
    if store.manifest(ref) is None:
        raise ConfigError(f"dataset {job.dataset!r}: no speech utterances stage ({ref}); ingest a speech kind")
    rows = utterances_from_table(store.read_table(ref))
    rows.sort(key=lambda r: r.utt_id)
    if job.domains:
        rows = [r for r in rows if r.domain in job.domains]
    if job.limit is not None and len(rows) > job.limit:
        keep = np.sort(np.random.default_rng(job.train.seed).permutation(len(rows))[: job.limit])
        rows = [rows[i] for i in keep]
    if not rows:
        raise ConfigError(f"dataset {job.dataset!r}: no training utterances (domains {job.domains})")
    return rows


def fit_job(job: ASRTrainJob, rows: list[Any], rank: int = 0, world: int = 1, threads: int = 1) -> Any:
    """Build the seeded model and train it: the body of one worker (also what a test calls)."""
    import torch

    from trustflow.models.speech.ctc import ASR_MODELS
    from trustflow.tasks.asr.methods.base import ASR_METHODS
    from trustflow.tasks.asr.train import fit

    torch.set_num_threads(max(1, threads))
    torch.manual_seed(job.train.seed)
    model = ASR_MODELS.create(job.model)
    method = ASR_METHODS.create(job.method)
    return fit(method, model, rows, job.train, rank, world, sum_gradients if world > 1 else None)


def sum_gradients(grads: list[Any]) -> None:
    """Sum the gradients over the process group in place (one flat all-reduce; the loss is
    already divided by the global batch size, so the sum is the one-process gradient)."""
    import torch
    import torch.distributed as dist

    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def train_worker(config: dict[str, Any]) -> None:
    """The per-worker loop (runs inside Ray Train workers)."""
    import ray.train
    import torch

    from trustflow.tasks.ray_parts import StoreSpec

    job = ASRTrainJob(**config["job"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    store = StoreSpec(**config["store"]).open()
    rows = load_rows(store, job)
    result = fit_job(job, rows, rank, world, int(config.get("threads", 1)))
    metrics = {"utterances": result.utterances, "seconds": result.seconds}
    if rank != 0:
        ray.train.report(metrics, checkpoint=None)
        return
    payload = {
        "model": result.model.state_dict(),
        "history": result.history,
        "utterances": result.utterances_total,
        "seconds": result.seconds,
        "train_rows": len(rows),
    }
    directory = tempfile.mkdtemp(prefix="tf-asr-ckpt-")
    torch.save(payload, os.path.join(directory, CHECKPOINT_FILE))
    ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(directory))


def run_training(store: Any, run_id: str, job: ASRTrainJob, threads: int = 1) -> dict[str, Any]:
    """Fit the job on Ray Train; returns rank 0's checkpoint payload (weights-only load)."""
    import torch
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from trustflow.tasks.ray_parts import StoreSpec

    spec = StoreSpec.of(store)
    trainer = TorchTrainer(
        train_worker,
        train_loop_config={"job": job.model_dump(), "store": spec.__dict__, "threads": threads},
        scaling_config=ScalingConfig(num_workers=job.workers, use_gpu=False),
        torch_config=TorchConfig(backend="gloo"),
        run_config=RunConfig(
            name=f"attempt-{uuid.uuid4().hex[:8]}",  # a finished job is skipped by its stage, never restored
            storage_path=store.path("runs", names.ASR_TRAIN, run_id, "ray"),
            storage_filesystem=None if store.location.scheme == "file" else store.fs,
        ),
    )
    start = time.perf_counter()
    result = trainer.fit()
    if result.checkpoint is None:
        raise ConfigError(f"ASR training run {run_id} finished without a checkpoint")
    with result.checkpoint.as_directory() as directory:
        saved: dict[str, Any] = torch.load(Path(directory) / CHECKPOINT_FILE, weights_only=True, map_location="cpu")
    saved["wall_seconds"] = time.perf_counter() - start
    return saved


def checkpoint_bytes(state: dict[str, Any], job: ASRTrainJob) -> bytes:
    """What lands in the store: the weights and the job that rebuilds the model."""
    import torch

    buf = io.BytesIO()
    torch.save({"model": state, "job": job.model_dump(mode="json"), "kind": "asr-ctc"}, buf)
    return buf.getvalue()


def load_checkpoint(data: bytes) -> tuple[Any, ASRTrainJob]:
    """(model in eval mode, its job) from ``checkpoint_bytes`` output (weights-only load)."""
    import torch

    from trustflow.models.speech.ctc import ASR_MODELS

    payload: dict[str, Any] = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    job = ASRTrainJob(**payload["job"])
    model = ASR_MODELS.create(job.model)
    model.load_state_dict(payload["model"])
    model.spec_augment = None
    model.eval()
    return model, job


__all__ = [
    "CHECKPOINT_FILE",
    "DEFAULT_MODEL",
    "ASRTrainJob",
    "checkpoint_bytes",
    "fit_job",
    "load_checkpoint",
    "load_rows",
    "make_jobs",
    "model_run",
    "run_training",
    "sum_gradients",
    "train_worker",
]
