"""The robust vision pipeline's Prefect tasks and what the flows publish about them.

``train_task`` (stage ``epochs`` of ``runs/adversarial_train/<run_id>/``): fits or resumes
one job on Ray Train, writes the per-epoch table (schema ``train_epochs``), the final and
the best model as weights-only checkpoints (``model/final.pt``, ``model/best.pt``; with the
job's ``fingerprint`` option they carry the module's options in their meta, and the stage
``fingerprint`` beside them holds both models' fingerprints, schema ``fingerprint``), a PNG of
clean / FGSM / PGD accuracy per epoch, and turns a catastrophic-overfitting flag into a
Prefect event (``trustflow.training.catastrophic-overfitting``).

``evaluate_task`` (stage ``results`` of ``runs/robustness_evaluate/<run_id>/``, schema
``robustness_results``): one Ray task per attack and per corruption over the same model and
data, fanned out with :func:`trustflow.tasks.ray_parts.ray_map`. A finished stage is read back instead of recomputed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from trustflow import names
from trustflow.data.store import StageRef
from trustflow.models.vision.resolve import PortableModel
from trustflow.tasks.ray_parts import StoreSpec, ray_map
from trustflow.tasks.robustness import plots
from trustflow.tasks.robustness.distributed import TrainJob

CO_EVENT = "trustflow.training.catastrophic-overfitting"
EPOCH_ARTIFACT_COLUMNS = ("epoch", "loss", "probe_clean_acc", "fgsm_acc", "pgd_acc", "co", "rolled_back")
RESULT_ARTIFACT_COLUMNS = ("attack", "eps", "corruption", "severity", "accuracy")
AttackPlan = list[tuple[str, dict[str, Any]]]


def run_digest(payload: Any) -> str:
    """A short, stable hash of a run's parameters (the default run id's suffix)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]


# ---------------------------------------------------------------- training


@task(name="ray-train", task_run_name="train-{run_id}", cache_policy=NO_CACHE)
def train_task(spec: StoreSpec, run_id: str, job: dict[str, Any]) -> dict[str, Any]:
    import pyarrow as pa

    from trustflow.data.schemas import TRAIN_EPOCHS
    from trustflow.data.vision.datasets import load_dataset
    from trustflow.infra.ray_runtime import ensure_ray
    from trustflow.models.vision.resolve import store_run_checkpoint
    from trustflow.models.vision.spec import load_classifier
    from trustflow.tasks.robustness.distributed import history_rows, run_training

    store = spec.open()
    ensure_ray(store.settings)
    train_job = TrainJob(**job)
    if train_job.fingerprint is not None:
        _check_fingerprint_layer(train_job)
    saved = run_training(store, run_id, train_job)
    rows = history_rows(saved, run_id, train_job)
    ref = StageRef(names.ADVERSARIAL_TRAIN, run_id, names.EPOCHS)
    if store.manifest(ref) is None:
        store.write_stage(
            ref, TRAIN_EPOCHS, pa.Table.from_pylist(rows, schema=TRAIN_EPOCHS.schema), ["epoch"], {"job": job}
        )
    data = load_dataset(train_job.dataset, "train", train_job.image_size)
    best = (saved["best"] or {}).get("weights") or saved["model"]
    fingerprinted = []
    for which, weights in (("final", saved["model"]), ("best", best)):
        model = load_classifier(
            train_job.arch, num_classes=data.num_classes, in_channels=data.x.shape[1], mean=data.mean, std=data.std
        )
        meta: dict[str, Any] = {"run_id": run_id, "method": train_job.method, "which": which}
        if train_job.fingerprint is not None:
            from trustflow.models.fingerprint.module import FINGERPRINT_META, FingerprintOptions, insert_fingerprint

            insert_fingerprint(model, train_job.fingerprint)
            inserted: FingerprintOptions = model.fingerprint_options  # type: ignore[assignment]
            meta[FINGERPRINT_META] = inserted.model_dump()  # what fingerprint/checkpoint.load_model re-inserts
            fingerprinted.append((which, model))
        model.load_state_dict(weights)
        store_run_checkpoint(store, run_id, which, model, train_job.arch, meta)
    if fingerprinted:
        from trustflow.tasks.provenance.stages import write_fingerprint_stage

        write_fingerprint_stage(store, StageRef(names.ADVERSARIAL_TRAIN, run_id, names.FINGERPRINT), fingerprinted)
    plot = plots.accuracy_per_epoch(rows, train_job.method)
    store.write_bytes_atomic(
        store.path("runs", names.ADVERSARIAL_TRAIN, run_id, "plots", plots.ACCURACY_PER_EPOCH), plot
    )
    co_epochs = [r["epoch"] for r in rows if r["co"]]
    if co_epochs:
        from prefect.events import emit_event

        emit_event(
            event=CO_EVENT,
            resource={"prefect.resource.id": f"trustflow.train.{run_id}"},
            payload={"epochs": co_epochs, "policy": train_job.co_policy},
        )
    return {
        "run_id": run_id,
        "epochs": rows,
        "co_epochs": co_epochs,
        "best_epoch": int((saved["best"] or {}).get("epoch", -1)),
    }


def _check_fingerprint_layer(job: TrainJob) -> None:
    """Insert the module into a fresh model here, in the driver: a wrong layer name is one
    ``ConfigError`` before Ray Train starts, not a failure inside every worker."""
    from trustflow.data.vision.datasets import load_dataset
    from trustflow.models.fingerprint.module import insert_fingerprint
    from trustflow.models.vision.spec import load_classifier

    assert job.fingerprint is not None
    data = load_dataset(job.dataset, "test", job.image_size)
    model = load_classifier(job.arch, num_classes=data.num_classes, in_channels=data.x.shape[1])
    insert_fingerprint(model, job.fingerprint)
    model(data.tensors()[0][:2])  # a layer that changes the spatial size fails on the first forward


def publish_training(result: Mapping[str, Any], job: TrainJob, store_url: str) -> None:
    """The per-epoch table and a summary as Prefect artifacts of the flow run."""
    run_id, rows = result["run_id"], result["epochs"]
    create_table_artifact(
        key=f"train-{job.method}".replace("_", "-"),
        table=[
            {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items() if k in EPOCH_ARTIFACT_COLUMNS}
            for r in rows
        ],
        description=f"adversarial training {run_id}",
    )
    last = rows[-1] if rows else {}
    clean, pgd = last.get("probe_clean_acc", float("nan")), last.get("pgd_acc", float("nan"))
    create_markdown_artifact(
        key="train-summary",
        markdown="\n".join(
            [
                f"# Training `{run_id}` ({job.method} on {job.dataset}, {job.arch}, {job.workers} Ray Train workers)",
                f"final epoch {last.get('epoch')}: clean {clean:.3f}, PGD-10 {pgd:.3f}",
                f"catastrophic overfitting at epochs: {result['co_epochs'] or 'none'}; "
                f"best epoch {result['best_epoch']}",
                f"model: `{store_url}/runs/{names.ADVERSARIAL_TRAIN}/{run_id}/model/best.pt`",
            ]
        ),
    )


# ---------------------------------------------------------------- evaluation


def attack_plan(
    attacks: Iterable[str], eps: float, attack_options: Mapping[str, Mapping[str, Any]] | None = None
) -> AttackPlan:
    """``(name, options)`` per attack: the shared ``eps`` (not for ``clean``) under each
    attack's own options."""
    options = attack_options or {}
    return [(a, {**({"eps": eps} if a != "clean" else {}), **options.get(a, {})}) for a in attacks]


def _evaluate_part(
    model: PortableModel,
    dataset: str,
    split: str,
    size: int | None,
    limit: int | None,
    attack: tuple[str, dict[str, Any]] | None,
    corruption: str | None,
    severities: list[int],
    batch_size: int,
    seed: int,
) -> list[dict[str, Any]]:
    """In a Ray worker: one attack or one corruption over the whole (limited) split."""
    import torch

    from trustflow.data.vision.datasets import load_dataset
    from trustflow.models.vision.spec import load_classifier
    from trustflow.tasks.robustness.evaluate import evaluate_classifier

    torch.set_num_threads(1)
    data = load_dataset(dataset, split, size)
    if limit:
        data = data.subset(limit)
    with model.local_spec() as spec:
        classifier = load_classifier(
            spec, num_classes=data.num_classes, in_channels=data.x.shape[1], mean=data.mean, std=data.std
        )
    return evaluate_classifier(
        classifier,
        data,
        attacks=[attack] if attack else [],
        corruptions=[corruption] if corruption else [],
        severities=severities,
        batch_size=batch_size,
        seed=seed,
        model_name=model.label,
    )


@task(name="robustness-eval", task_run_name="eval-{model}", cache_policy=NO_CACHE)
def evaluate_task(
    spec: StoreSpec,
    run_id: str,
    model: str,
    dataset: str,
    split: str,
    size: int | None,
    limit: int | None,
    attacks: AttackPlan,
    corruptions: list[str],
    severities: list[int],
    batch_size: int,
    seed: int,
) -> list[dict[str, Any]]:
    import pyarrow as pa

    from trustflow.data.schemas import ROBUSTNESS_RESULTS
    from trustflow.infra.ray_runtime import ensure_ray

    store = spec.open()
    ref = StageRef(names.ROBUSTNESS_EVALUATE, run_id, names.RESULTS)
    if store.manifest(ref) is not None:
        return store.read_table(ref).to_pylist()
    ensure_ray(store.settings)
    portable = PortableModel.of(store, model)
    common = (dataset, split, size, limit)
    tail = (severities, batch_size, seed)
    calls: list[tuple[Any, ...]] = [(portable, *common, a, None, *tail) for a in attacks]
    calls += [(portable, *common, None, c, *tail) for c in corruptions]
    rows = [row for part in ray_map(_evaluate_part, calls, "robustness evaluations") for row in part]
    for r in rows:
        r["attack"] = r.get("attack") or "corruption"
        r["row_key"] = f"{r['attack']}|{r.get('eps')}|{r.get('corruption')}|{r.get('severity')}"
    table = pa.Table.from_pylist(
        [{k: r.get(k) for k in ROBUSTNESS_RESULTS.names} for r in rows], schema=ROBUSTNESS_RESULTS.schema
    )
    store.write_stage(ref, ROBUSTNESS_RESULTS, table, ["row_key"], {"model": model, "dataset": dataset})
    return rows


def publish_evaluation(
    rows: Sequence[Mapping[str, Any]], result: Mapping[str, Any], model: str, dataset: str, run_id: str
) -> None:
    """The result rows and a summary as Prefect artifacts of the flow run."""
    create_table_artifact(
        key="robustness-results",
        table=[{k: r.get(k) for k in RESULT_ARTIFACT_COLUMNS} for r in rows],
        description=f"robustness of {model} on {dataset}",
    )
    create_markdown_artifact(
        key="robustness-summary",
        markdown="\n".join(
            [
                f"# Robustness of `{model}` on {dataset} (run `{run_id}`)",
                f"clean accuracy: {result['clean_accuracy']}",
                *[f"- {k}: {v:.3f}" for k, v in result["robust_accuracy"].items()],
                f"mean corruption accuracy: {result['mean_corruption_accuracy']}",
            ]
        ),
    )
