"""Adversarial training on Ray Train: DDP workers, checkpoints in the store, resumable.

One ``TorchTrainer`` run per training job. Each worker loads the dataset, takes its shard
(``prepare_data_loader`` adds a DistributedSampler), wraps the model in DDP (gloo on CPU,
nccl on GPU) and runs the method's epochs; every epoch all workers probe FGSM/PGD accuracy
on the same fixed held-out batch — so they reach the same catastrophic-overfitting verdict
without talking — and report a checkpoint. Ray Train's storage path is inside the artifact
store (``runs/adversarial_train/<run_id>/ray``): a run started again with the same run id
resumes from its latest checkpoint (Ray Train V2 restores by (storage_path, name)).

DeepSpeed (ZeRO 1/2) is a strategy for GPU runs; it is import-guarded and refused on CPU
with a clear error, because its CPU path is a different optimizer stack than the one the
methods were written for.
"""

from __future__ import annotations

import copy
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from trustflow import names
from trustflow.errors import ConfigError, InputError
from trustflow.models.fingerprint.module import FingerprintOptions


class TrainJob(BaseModel):
    """Everything that defines a training run (its hash is the default run id)."""

    model_config = ConfigDict(extra="forbid")

    method: str = "fgsm_law"
    method_options: dict[str, Any] = Field(default_factory=dict)
    arch: str = "small_cnn"
    dataset: str = "digits"
    image_size: int | None = None
    epochs: int = Field(5, ge=1)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(0.1, gt=0)
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: Literal["piecewise", "cyclic"] = "piecewise"
    workers: int = Field(2, ge=1)
    use_gpu: bool = False
    strategy: Literal["ddp", "deepspeed"] = "ddp"
    zero_stage: Literal[1, 2] = 1
    eps: float = Field(8 / 255, gt=0)  # robustness probe budget (and the method's, unless it sets its own)
    probe_size: int = Field(256, ge=8)
    co_policy: Literal["stop", "rollback", "continue"] = "rollback"
    co_drop: float = 0.2
    co_ratio: float = 0.5
    seed: int = 0
    max_steps_per_epoch: int | None = None  # smoke runs
    # provenance (issue 15): insert the fingerprint module at this layer and add the
    # anti-overwriting term to every step of whichever method trains the model
    fingerprint: FingerprintOptions | None = None


def check_strategy(job: TrainJob) -> None:
    if job.strategy == "deepspeed":
        if not job.use_gpu:
            raise ConfigError("strategy deepspeed needs GPUs (use_gpu=True); on CPU use strategy ddp")
        try:
            import deepspeed  # noqa: F401
        except ImportError as exc:
            raise ConfigError(f"strategy deepspeed: deepspeed is not importable here ({exc})") from None


def _checkpoint_payload(
    model: Any, optimizer: Any, scheduler: Any, state: Any, best: dict[str, Any], history: list[dict[str, Any]]
) -> dict[str, Any]:
    from trustflow.tasks.robustness.training.base import unwrap

    return {
        "model": unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "state": state.state_dict(),
        "best": best,
        "history": history,
    }


def train_worker(config: dict[str, Any]) -> None:
    """The per-worker loop (runs inside Ray Train workers)."""
    import ray.train
    import ray.train.torch
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from trustflow.data.vision.datasets import load_dataset
    from trustflow.models.vision.spec import load_classifier
    from trustflow.tasks.robustness.training import TRAINING_METHODS, make_method
    from trustflow.tasks.robustness.training.base import unwrap
    from trustflow.tasks.robustness.training.co_detection import CatastrophicOverfittingDetector, robust_accuracy_probe
    from trustflow.tasks.robustness.training.loop import PerStepLR, lr_schedule, train_one_epoch

    job = TrainJob(**config["job"])
    torch.manual_seed(job.seed)
    train = load_dataset(job.dataset, "train", job.image_size)
    test = load_dataset(job.dataset, "test", job.image_size)
    if not test.held_out:  # an npz with only x, y: evaluation data, not a held-out probe set
        raise InputError(
            f"dataset {job.dataset!r}: training needs a held-out test split for its probe: arrays 'x_test' + "
            "'y_test' beside 'x' + 'y' (a file with only 'x' + 'y' is evaluation data)"
        )
    x_train, y_train = train.tensors()
    x_test, y_test = test.tensors()
    g = torch.Generator().manual_seed(job.seed)
    probe_idx = torch.randperm(len(y_test), generator=g)[: job.probe_size]
    probe_x, probe_y = x_test[probe_idx], y_test[probe_idx]

    model = load_classifier(
        job.arch, num_classes=train.num_classes, in_channels=x_train.shape[1], mean=train.mean, std=train.std
    )
    extra_loss = None
    if job.fingerprint is not None:
        from trustflow.models.fingerprint.module import insert_fingerprint
        from trustflow.tasks.provenance.train import FingerprintObjective

        insert_fingerprint(model, job.fingerprint)
        # every rank draws the same noise frequencies: the term is part of the objective, not of the data
        extra_loss = FingerprintObjective.for_model(model, job.seed)
    options = dict(job.method_options)
    if "eps" not in options and "eps" in TRAINING_METHODS.entry(job.method).options.model_fields:
        options["eps"] = job.eps  # the job's budget is the method's unless method_options overrides it
    method = make_method(job.method, **options)
    state = method.init_state(model, seed=job.seed + 1000 * ray.train.get_context().get_world_rank())
    model = ray.train.torch.prepare_model(model)
    loader = ray.train.torch.prepare_data_loader(
        DataLoader(TensorDataset(x_train, y_train), batch_size=job.batch_size, shuffle=True, drop_last=False)
    )
    optimizer = torch.optim.SGD(
        unwrap(model).parameters(), lr=job.lr, momentum=job.momentum, weight_decay=job.weight_decay
    )
    steps_per_epoch = max(1, min(len(loader), job.max_steps_per_epoch or len(loader)))
    scheduler = PerStepLR(optimizer, lr_schedule(job.schedule, job.epochs, job.lr), steps_per_epoch)
    detector = CatastrophicOverfittingDetector(
        drop_threshold=job.co_drop, ratio_threshold=job.co_ratio, policy=job.co_policy
    )
    best: dict[str, Any] = {"pgd_acc": -1.0, "epoch": -1, "weights": None, "source": "model"}
    history: list[dict[str, Any]] = []

    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            saved = torch.load(Path(directory) / "state.pt", weights_only=True, map_location="cpu")
        unwrap(model).load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        state.load_state_dict(saved["state"])
        best, history = saved["best"], saved["history"]
        for h in history:  # replay the verdict history so the detector compares with the right past
            detector.check(int(h["epoch"]), h["fgsm_acc"], h["pgd_acc"])

    probe_eps = float(getattr(method.options, "eps", job.eps))
    while state.epoch < job.epochs:
        if hasattr(loader, "sampler") and hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(state.epoch)
        metrics = train_one_epoch(
            model,
            method,
            loader,
            optimizer,
            scheduler.step,
            state,
            "cpu" if not job.use_gpu else ray.train.torch.get_device(),
            max_steps=job.max_steps_per_epoch,
            extra_loss=extra_loss,
        )
        epoch = int(metrics["epoch"])
        # CO is a property of the model being trained: probe it; FGSM-LAW's weight average is
        # probed too (once it has been updated) and whichever is more robust is the candidate best
        live = unwrap(model)
        fgsm_acc, pgd_acc = robust_accuracy_probe(
            live, probe_x, probe_y, probe_eps, generator=torch.Generator().manual_seed(job.seed)
        )
        clean_acc = _clean_accuracy(live, probe_x, probe_y)
        verdict = detector.check(epoch, fgsm_acc, pgd_acc)
        candidate, cand_pgd, source = live, pgd_acc, "model"
        if state.ema is not None and state.ema.n_updates > 0:
            _, ema_pgd = robust_accuracy_probe(
                state.ema.model, probe_x, probe_y, probe_eps, generator=torch.Generator().manual_seed(job.seed)
            )
            if ema_pgd > pgd_acc:
                candidate, cand_pgd, source = state.ema.model, ema_pgd, "ema"
        row = {
            **metrics,
            "epoch": epoch,
            "probe_clean_acc": clean_acc,
            "fgsm_acc": fgsm_acc,
            "pgd_acc": pgd_acc,
            "co": bool(verdict.co),
            "co_reason": verdict.reason or "",
            "evaluated": source,
            "rolled_back": False,
        }
        if cand_pgd > best["pgd_acc"] and not verdict.co:
            best = {
                "pgd_acc": cand_pgd,
                "epoch": epoch,
                "weights": copy.deepcopy(candidate.state_dict()),
                "source": source,
            }
        stop = False
        if verdict.co and job.co_policy == "rollback" and best["weights"] is not None:
            unwrap(model).load_state_dict(best["weights"])
            row["rolled_back"] = True
        elif verdict.co and job.co_policy == "stop":
            stop = True
        history.append(row)
        ray.train.report(
            {k: v for k, v in row.items() if isinstance(v, (int, float, bool, str))},
            checkpoint=_report_checkpoint(_checkpoint_payload(model, optimizer, scheduler, state, best, history)),
        )
        if stop:
            break


def _clean_accuracy(model: Any, x: Any, y: Any) -> float:
    import torch

    was_training = model.training
    model.eval()
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    model.train(was_training)
    return acc


def _report_checkpoint(payload: dict[str, Any]) -> Any:
    """Rank 0 reports the checkpoint; the others report metrics only (the state is the same)."""
    import ray.train
    import torch

    if ray.train.get_context().get_world_rank() != 0:
        return None
    directory = tempfile.mkdtemp(prefix="tf-ckpt-")
    torch.save(payload, os.path.join(directory, "state.pt"))
    return ray.train.Checkpoint.from_directory(directory)


def storage_for(store: Any, run_id: str) -> tuple[str, Any]:
    """(storage_path, storage_filesystem) for Ray Train inside the store."""
    path = store.path("runs", names.ADVERSARIAL_TRAIN, run_id)
    if store.location.scheme == "file":
        return path, None
    return path, store.fs


def run_training(store: Any, run_id: str, job: TrainJob) -> dict[str, Any]:
    """Fit (or resume) the job; returns the per-epoch history and the final checkpoint state."""
    import torch
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    check_strategy(job)
    storage_path, fs = storage_for(store, run_id)
    trainer = TorchTrainer(
        train_worker,
        train_loop_config={"job": job.model_dump()},
        scaling_config=ScalingConfig(num_workers=job.workers, use_gpu=job.use_gpu),
        torch_config=TorchConfig(backend="nccl" if job.use_gpu else "gloo"),
        run_config=RunConfig(
            name="ray",
            storage_path=storage_path,
            storage_filesystem=fs,
            failure_config=FailureConfig(max_failures=2),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
        ),
    )
    result = trainer.fit()
    if result.checkpoint is None:
        raise ConfigError(f"training run {run_id} finished without a checkpoint")
    with result.checkpoint.as_directory() as directory:
        saved = torch.load(Path(directory) / "state.pt", weights_only=True, map_location="cpu")
    return saved


def history_rows(saved: dict[str, Any], run_id: str, job: TrainJob) -> list[dict[str, Any]]:
    rows = []
    for h in saved["history"]:
        rows.append(
            {
                "run_id": run_id,
                "method": job.method,
                "arch": job.arch,
                "dataset": job.dataset,
                "epoch": int(h["epoch"]),
                "loss": float(h["loss"]),
                "train_clean_acc": _f(h.get("clean_acc")),
                "train_adv_acc": _f(h.get("adv_acc")),
                "probe_clean_acc": float(h["probe_clean_acc"]),
                "fgsm_acc": float(h["fgsm_acc"]),
                "pgd_acc": float(h["pgd_acc"]),
                "co": bool(h["co"]),
                "co_reason": str(h["co_reason"]),
                "rolled_back": bool(h["rolled_back"]),
                "evaluated": str(h["evaluated"]),
                "samples_per_s": _f(h.get("samples_per_s")),
                "seconds": _f(h.get("seconds")),
                "lr": _f(h.get("lr")),
            }
        )
    return rows


def _f(v: Any) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)
