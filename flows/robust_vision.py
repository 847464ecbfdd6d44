"""Robust vision flows: ``adversarial_train`` (Ray Train) and ``robustness_evaluate`` (Ray tasks).

Each flow composes the stages of ``tasks/robustness/stages.py`` (which documents what lands
in the store) and publishes their Prefect artifacts. Model specs for evaluation: an
architecture spec (untrained), ``torchscript:PATH``, ``ckpt:PATH`` or
``run:<training run id>[/final|/best]`` (a checkpoint in the store, ``models/vision/resolve.py``).
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from trustflow import names
from trustflow.data.store import ArtifactStore
from trustflow.registry import validate_options
from trustflow.settings import load_settings
from trustflow.tasks.ray_parts import StoreSpec
from trustflow.tasks.robustness import stages
from trustflow.tasks.robustness.corruptions import corruption_names
from trustflow.tasks.robustness.distributed import TrainJob
from trustflow.tasks.robustness.evaluate import summary


def _store() -> ArtifactStore:
    settings = load_settings()
    return ArtifactStore(settings.effective_store_url, settings)


@flow(name=names.ADVERSARIAL_TRAIN, flow_run_name="train-{method}-{dataset}")
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
    fingerprint: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train ``arch`` on ``dataset`` with ``method`` on Ray Train; re-running the same job resumes.

    ``eps`` is the budget of the per-epoch FGSM/PGD probe (and of the method, unless
    ``method_options`` sets its own); default 8/255. ``fingerprint`` (FingerprintOptions:
    ``layer``, ``filters``, ``anti_overwrite`` …) embeds the provenance fingerprint module while
    training (docs/pipelines/provenance.md)."""
    job = validate_options(
        "training job",
        TrainJob,
        {
            "method": method,
            "dataset": dataset,
            "arch": arch,
            "epochs": epochs,
            "workers": workers,
            "batch_size": batch_size,
            "lr": lr,
            "method_options": method_options or {},
            "image_size": image_size,
            "co_policy": co_policy,
            "use_gpu": use_gpu,
            "strategy": strategy,
            "seed": seed,
            "max_steps_per_epoch": max_steps_per_epoch,
            **({"eps": eps} if eps is not None else {}),
            **({"fingerprint": fingerprint} if fingerprint else {}),
        },
    )
    run_id = run_id or f"train-{method}-{stages.run_digest(job.model_dump())}"
    store = _store()
    result = stages.train_task(StoreSpec.of(store), run_id, job.model_dump())
    stages.publish_training(result, job, store.url)
    return result


@flow(name=names.ROBUSTNESS_EVALUATE, flow_run_name="eval-{dataset}")
def robustness_evaluate(
    model: str,
    dataset: str = "digits",
    attacks: list[str] = ["clean", "fgsm", "pgd"],  # noqa: B006  (Prefect shows the defaults)
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
    plan = stages.attack_plan(attacks, eps, attack_options)
    chosen = corruption_names(corruptions) if corruptions else []
    params = {
        "model": model,
        "dataset": dataset,
        "plan": plan,
        "corruptions": chosen,
        "severities": severities,
        "split": split,
        "size": image_size,
        "limit": limit,
        "seed": seed,
    }
    run_id = run_id or f"eval-{stages.run_digest(params)}"
    store = _store()
    rows = stages.evaluate_task(
        StoreSpec.of(store),
        run_id,
        model,
        dataset,
        split,
        image_size,
        limit,
        plan,
        chosen,
        severities,
        batch_size,
        seed,
    )
    result = summary(rows)
    stages.publish_evaluation(rows, result, model, dataset, run_id)
    return {"run_id": run_id, "rows": rows, "summary": result}
