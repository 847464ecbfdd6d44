"""``fingerprint_embed``: train fingerprinted sources (or take existing ones) and register
their fingerprints (stage ``fingerprint`` of ``runs/fingerprint_embed/<run_id>/``).

``workers=0`` trains each source in this process (seconds for the small models of the demo
and tests); ``workers>=1`` trains each on Ray Train (``adversarial_train``'s task with the
job's ``fingerprint`` option, any training method), and registers ``run:<train run>/final``.
Composes the stages of ``tasks/provenance/stages.py`` and ``tasks/robustness/stages.py``.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from trustflow import names
from trustflow.data.store import ArtifactStore
from trustflow.registry import validate_options
from trustflow.settings import load_settings
from trustflow.tasks.provenance import stages
from trustflow.tasks.ray_parts import StoreSpec
from trustflow.tasks.robustness import stages as robust_stages
from trustflow.tasks.robustness.distributed import TrainJob


def _store() -> ArtifactStore:
    settings = load_settings()
    return ArtifactStore(settings.effective_store_url, settings)


@flow(name=names.FINGERPRINT_EMBED, flow_run_name="embed-{dataset}")
def fingerprint_embed(
    layer: str = "net.3",
    arch: str = "small_cnn",
    dataset: str = "fashion-mnist",
    seeds: list[int] = [0, 1],  # noqa: B006  (Prefect shows the defaults)
    epochs: int = 2,
    lr: float = 0.05,
    batch_size: int = 128,
    method: str = "standard",
    workers: int = 0,
    limit: int | None = 10000,
    max_steps: int | None = None,
    image_size: int | None = None,
    filters: int | None = None,
    anti_overwrite: float = 5e-4,
    sources: list[str] | None = None,
    train: bool = True,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Train one fingerprinted source per seed (unless ``train`` is false) and register the
    fingerprints of those and of ``sources`` (references of already fingerprinted models).

    ``limit`` (in-process training only) uses the first N training images; ``max_steps`` caps
    the batches per epoch (Ray Train: ``max_steps_per_epoch``)."""
    fingerprint = {"layer": layer, "anti_overwrite": anti_overwrite, **({"filters": filters} if filters else {})}
    params = {
        "layer": layer, "arch": arch, "dataset": dataset, "seeds": seeds, "epochs": epochs, "lr": lr,
        "batch_size": batch_size, "method": method, "workers": workers, "limit": limit, "max_steps": max_steps,
        "image_size": image_size, "fingerprint": fingerprint, "sources": sources or [], "train": train,
    }  # fmt: skip
    run_id = run_id or f"embed-{stages.digest(params)}"
    store = _store()
    spec = StoreSpec.of(store)
    refs = list(sources or [])
    plan: dict[str, Any] | None = None
    train_runs: list[str] = []
    if train and workers >= 1:
        for seed in seeds:
            job = validate_options(
                "training job",
                TrainJob,
                {
                    "method": method, "dataset": dataset, "arch": arch, "epochs": epochs, "workers": workers,
                    "batch_size": batch_size, "lr": lr, "image_size": image_size, "seed": seed,
                    "max_steps_per_epoch": max_steps, "fingerprint": {**fingerprint, "seed": seed},
                },
            )  # fmt: skip
            train_id = f"{run_id}-s{seed}"
            robust_stages.train_task(spec, train_id, job.model_dump())
            train_runs.append(train_id)
            refs.append(f"run:{train_id}/final")
    elif train:
        plan = {
            "arch": arch, "dataset": dataset, "image_size": image_size, "limit": limit, "fingerprint": fingerprint,
            "seeds": list(seeds), "epochs": epochs, "lr": lr, "batch_size": batch_size, "method": method,
            "max_steps": max_steps,
        }  # fmt: skip
    result = stages.embed_task(spec, run_id, refs, plan)
    stages.publish_embed(result)
    return {**result, "train_runs": train_runs}
