"""Robust vision flows: ``adversarial_train`` (Ray Train) and ``robustness_evaluate`` (Ray tasks).

Training writes, under ``runs/adversarial_train/<run_id>/``: Ray Train's checkpoints
(``ray/``), the per-epoch table (``epochs``, schema ``train_epochs``), the final and the best
model as weights-only checkpoints (``model/final.pt``, ``model/best.pt``) and a PNG of clean
/ FGSM / PGD accuracy per epoch with catastrophic-overfitting marks. A catastrophic
overfitting flag also becomes a Prefect event (``trustflow.training.catastrophic-overfitting``).

Evaluation fans out one Ray task per attack and per corruption over the same model and
data and writes ``runs/robustness_evaluate/<run_id>/results`` (schema ``robustness_results``).
Model specs: a registry name (untrained), ``torchscript:PATH``, ``ckpt:PATH`` or
``run:<training run id>[/final|/best]`` (a checkpoint in the store).
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from trustflow.data.store import ArtifactStore, StageRef
from trustflow.errors import ConfigError, InputError
from trustflow.settings import load_settings
from trustflow.tasks.ray_parts import StoreSpec
from trustflow.tasks.robustness.distributed import FLOW as TRAIN_FLOW
from trustflow.tasks.robustness.distributed import TrainJob

EVAL_FLOW = "robustness_evaluate"


def _digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]


# ---------------------------------------------------------------- training


@task(name="ray-train", task_run_name="train-{run_id}", cache_policy=NO_CACHE)
def train_task(spec: StoreSpec, run_id: str, job: dict[str, Any]) -> dict[str, Any]:
    import pyarrow as pa
    import torch

    from trustflow.data.schemas import TRAIN_EPOCHS
    from trustflow.data.vision.datasets import load_dataset
    from trustflow.infra.ray_runtime import ensure_ray
    from trustflow.models.vision.spec import load_classifier, save_checkpoint
    from trustflow.tasks.robustness.distributed import history_rows, run_training

    store = spec.open()
    ensure_ray(store.settings)
    train_job = TrainJob(**job)
    saved = run_training(store, run_id, train_job)
    rows = history_rows(saved, run_id, train_job)
    ref = StageRef(TRAIN_FLOW, run_id, "epochs")
    if store.manifest(ref) is None:
        store.write_stage(
            ref, TRAIN_EPOCHS, pa.Table.from_pylist(rows, schema=TRAIN_EPOCHS.schema), ["epoch"], {"job": job}
        )
    data = load_dataset(train_job.dataset, "train", train_job.image_size)
    for name, weights in (("final", saved["model"]), ("best", (saved["best"] or {}).get("weights") or saved["model"])):
        model = load_classifier(
            train_job.arch, num_classes=data.num_classes, in_channels=data.x.shape[1], mean=data.mean, std=data.std
        )
        model.load_state_dict(weights)
        with tempfile.TemporaryDirectory() as tmp:
            path = save_checkpoint(
                Path(tmp) / f"{name}.pt",
                model,
                train_job.arch,
                {"run_id": run_id, "method": train_job.method, "which": name},
            )
            store.write_bytes_atomic(store.path("runs", TRAIN_FLOW, run_id, "model", f"{name}.pt"), path.read_bytes())
    plot = _plot_history(rows, train_job.method)
    store.write_bytes_atomic(store.path("runs", TRAIN_FLOW, run_id, "plots", "accuracy_per_epoch.png"), plot)
    co_epochs = [r["epoch"] for r in rows if r["co"]]
    if co_epochs:
        from prefect.events import emit_event

        emit_event(
            event="trustflow.training.catastrophic-overfitting",
            resource={"prefect.resource.id": f"trustflow.train.{run_id}"},
            payload={"epochs": co_epochs, "policy": train_job.co_policy},
        )
    del torch
    return {
        "run_id": run_id,
        "epochs": rows,
        "co_epochs": co_epochs,
        "best_epoch": int((saved["best"] or {}).get("epoch", -1)),
    }


def _plot_history(rows: list[dict[str, Any]], method: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    epochs = [r["epoch"] for r in rows]
    for key, label in (("probe_clean_acc", "clean"), ("fgsm_acc", "FGSM"), ("pgd_acc", "PGD-10")):
        ax.plot(epochs, [r[key] for r in rows], marker="o", label=label)
    for r in rows:
        if r["co"]:
            ax.axvline(r["epoch"], color="red", linestyle="--", alpha=0.6)
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (held-out probe)")
    ax.set_title(f"{method}: accuracy per epoch (red: catastrophic overfitting)")
    ax.legend()
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


@flow(name=TRAIN_FLOW, flow_run_name="train-{method}-{dataset}")
def adversarial_train(
    method: str = "fgsm_law",
    dataset: str = "digits",
    arch: str = "small_cnn",
    epochs: int = 5,
    workers: int = 2,
    batch_size: int = 128,
    lr: float = 0.1,
    method_options: dict[str, Any] | None = None,
    image_size: int | None = None,
    co_policy: str = "rollback",
    use_gpu: bool = False,
    strategy: str = "ddp",
    seed: int = 0,
    run_id: str | None = None,
    max_steps_per_epoch: int | None = None,
    eps: float | None = None,
) -> dict[str, Any]:
    """Train ``arch`` on ``dataset`` with ``method`` on Ray Train; re-running the same job resumes.

    ``eps`` is the budget of the per-epoch FGSM/PGD probe (and of the method, unless
    ``method_options`` sets its own); default 8/255."""
    job = TrainJob(
        method=method,
        dataset=dataset,
        arch=arch,
        epochs=epochs,
        workers=workers,
        batch_size=batch_size,
        lr=lr,
        method_options=method_options or {},
        image_size=image_size,
        co_policy=co_policy,
        use_gpu=use_gpu,
        strategy=strategy,
        seed=seed,
        max_steps_per_epoch=max_steps_per_epoch,
        **({"eps": eps} if eps is not None else {}),
    )  # type: ignore[arg-type]
    run_id = run_id or f"train-{method}-{_digest(job.model_dump())}"
    settings = load_settings()
    store = ArtifactStore(settings.effective_store_url, settings)
    result = train_task(StoreSpec.of(store), run_id, job.model_dump())
    rows = result["epochs"]
    create_table_artifact(
        key=f"train-{method}".replace("_", "-"),
        table=[
            {
                k: (round(v, 4) if isinstance(v, float) else v)
                for k, v in r.items()
                if k in ("epoch", "loss", "probe_clean_acc", "fgsm_acc", "pgd_acc", "co", "rolled_back")
            }
            for r in rows
        ],
        description=f"adversarial training {run_id}",
    )
    last = rows[-1] if rows else {}
    create_markdown_artifact(
        key="train-summary",
        markdown="\n".join(
            [
                f"# Training `{run_id}` ({method} on {dataset}, {arch}, {workers} Ray Train workers)",
                f"final epoch {last.get('epoch')}: clean {last.get('probe_clean_acc', float('nan')):.3f}, PGD-10 {last.get('pgd_acc', float('nan')):.3f}",
                f"catastrophic overfitting at epochs: {result['co_epochs'] or 'none'}; best epoch {result['best_epoch']}",
                f"model: `{store.url}/runs/{TRAIN_FLOW}/{run_id}/model/best.pt`",
            ]
        ),
    )
    return result


# ---------------------------------------------------------------- evaluation


def resolve_model(store: ArtifactStore, spec: str, workdir: Path) -> str:
    """``run:<id>[/best|/final]`` → a local ``ckpt:`` copy of the store checkpoint; others unchanged."""
    if not spec.startswith("run:"):
        return spec
    run_id, _, which = spec[4:].partition("/")
    which = which or "best"
    if which not in ("best", "final"):
        raise ConfigError(f"model {spec!r}: use run:<id>, run:<id>/best or run:<id>/final")
    path = store.path("runs", TRAIN_FLOW, run_id, "model", f"{which}.pt")
    try:
        data = store.read_bytes(path)
    except (FileNotFoundError, OSError):
        raise InputError(
            f"model {spec!r}: no checkpoint at {store.url}/runs/{TRAIN_FLOW}/{run_id}/model/{which}.pt"
        ) from None
    local = workdir / f"{run_id}-{which}.pt"
    local.write_bytes(data)
    return f"ckpt:{local}"


def _eval_one(
    model_spec: str,
    model_label: str,
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
    import torch

    from trustflow.data.vision.datasets import load_dataset
    from trustflow.models.vision.spec import load_classifier
    from trustflow.tasks.robustness.evaluate import evaluate_classifier

    torch.set_num_threads(1)
    data = load_dataset(dataset, split, size)
    if limit:
        data = data.subset(limit)
    model = load_classifier(
        model_spec, num_classes=data.num_classes, in_channels=data.x.shape[1], mean=data.mean, std=data.std
    )
    attacks = [attack] if attack else []
    return evaluate_classifier(
        model,
        data,
        attacks=attacks,
        corruptions=[corruption] if corruption else [],
        severities=severities,
        batch_size=batch_size,
        seed=seed,
        model_name=model_label,
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
    attacks: list[tuple[str, dict[str, Any]]],
    corruptions: list[str],
    severities: list[int],
    batch_size: int,
    seed: int,
) -> list[dict[str, Any]]:
    import pyarrow as pa
    import ray

    from trustflow.data.schemas import ROBUSTNESS_RESULTS
    from trustflow.infra.ray_runtime import ensure_ray
    from trustflow.progress import track
    from trustflow.tasks.ray_parts import reraise_task_error

    store = spec.open()
    ref = StageRef(EVAL_FLOW, run_id, "results")
    done = store.manifest(ref)
    if done is not None:
        return store.read_table(ref).to_pylist()
    ensure_ray(store.settings)
    with tempfile.TemporaryDirectory() as tmp:
        local = resolve_model(store, model, Path(tmp))
        with open(local[5:], "rb") if local.startswith("ckpt:") else io.BytesIO() as fh:
            blob = fh.read()
        remote = ray.remote(num_cpus=1)(_eval_remote)
        jobs = [
            remote.remote(blob, local, model, dataset, split, size, limit, a, None, severities, batch_size, seed)
            for a in attacks
        ]
        jobs += [
            remote.remote(blob, local, model, dataset, split, size, limit, None, c, severities, batch_size, seed)
            for c in corruptions
        ]
        rows: list[dict[str, Any]] = []
        try:
            with track("robustness evaluations", len(jobs)) as advance:
                pending = list(jobs)
                while pending:
                    ready, pending = ray.wait(pending, num_returns=1)
                    rows.extend(ray.get(ready[0]))
                    advance(1)
        except ray.exceptions.RayTaskError as exc:
            reraise_task_error(exc)
    for r in rows:
        r["attack"] = r.get("attack") or "corruption"
        r["row_key"] = f"{r['attack']}|{r.get('eps')}|{r.get('corruption')}|{r.get('severity')}"
    table = pa.Table.from_pylist(
        [{k: r.get(k) for k in ROBUSTNESS_RESULTS.names} for r in rows], schema=ROBUSTNESS_RESULTS.schema
    )
    store.write_stage(ref, ROBUSTNESS_RESULTS, table, ["row_key"], {"model": model, "dataset": dataset})
    return rows


def _eval_remote(blob: bytes, local: str, model: str, *args: Any) -> list[dict[str, Any]]:
    """In a Ray worker: re-materialise a store checkpoint locally (workers may be on other nodes)."""
    if local.startswith("ckpt:") and blob:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.pt"
            path.write_bytes(blob)
            return _eval_one(f"ckpt:{path}", model, *args)
    return _eval_one(local, model, *args)


@flow(name=EVAL_FLOW, flow_run_name="eval-{dataset}")
def robustness_evaluate(
    model: str,
    dataset: str = "digits",
    attacks: list[str] = ["clean", "fgsm", "pgd"],  # noqa: B006
    eps: float = 8 / 255,
    attack_options: dict[str, dict[str, Any]] | None = None,
    corruptions: list[str] | str = [],  # noqa: B006
    severities: list[int] = [1, 2, 3, 4, 5],  # noqa: B006
    split: str = "test",
    image_size: int | None = None,
    limit: int | None = None,
    batch_size: int = 128,
    seed: int = 0,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Accuracy under attacks and corruptions; results Parquet + summary (mCE / relative mCE)."""
    from trustflow.tasks.robustness.corruptions import corruption_names
    from trustflow.tasks.robustness.evaluate import summary

    options = attack_options or {}
    plan = [(a, {**({"eps": eps} if a != "clean" else {}), **options.get(a, {})}) for a in attacks]
    names = corruption_names(corruptions) if corruptions else []
    params = {
        "model": model,
        "dataset": dataset,
        "plan": plan,
        "corruptions": names,
        "severities": severities,
        "split": split,
        "size": image_size,
        "limit": limit,
        "seed": seed,
    }
    run_id = run_id or f"eval-{_digest(params)}"
    settings = load_settings()
    store = ArtifactStore(settings.effective_store_url, settings)
    rows = evaluate_task(
        StoreSpec.of(store), run_id, model, dataset, split, image_size, limit, plan, names, severities, batch_size, seed
    )
    result = summary(rows)
    create_table_artifact(
        key="robustness-results",
        table=[{k: r.get(k) for k in ("attack", "eps", "corruption", "severity", "accuracy")} for r in rows],
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
    return {"run_id": run_id, "rows": rows, "summary": result}
