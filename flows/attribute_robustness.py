"""``attribute_robustness``: classifiers on ImageNet-E style attribute edits, drop vs the original.

1. **Edits**: an existing ``attribute_edits`` stage (``edits``: ``<flow>/<run>/<stage>`` or an
   ``attribute_robustness`` run id), or made here from a ``masked_objects`` dataset
   (``objects`` + ``editors``, ``tasks/attributes/make.py``).
2. **Own classifiers** (optional): ``train_methods`` (e.g. standard, pgd_at, fgsm_law) each
   train ``train_arch`` on ``train_dataset`` with the ``adversarial_train`` flow (Ray Train),
   and their best checkpoints (``run:<id>``) join ``models`` — the paper's question whether
   adversarial training makes a model *less* robust to attribute edits.
3. **Predictions**: every model on every edit (Ray, model × edit shard), resumable.
4. **Leaderboard**: top-1/top-5 per (model, attribute, level), the drop vs the same objects'
   originals with paired-bootstrap 95 % intervals, the accuracy-vs-level plot, Prefect artifacts.

The stages are in ``tasks/attributes/stages.py``; this flow only composes them.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from trustflow import names
from trustflow.data.store import ArtifactStore
from trustflow.errors import ConfigError
from trustflow.flows.robust_vision import adversarial_train
from trustflow.settings import load_settings
from trustflow.tasks.attributes import stages
from trustflow.tasks.ray_parts import StoreSpec

DEMO_MODELS = ("mobilenet_v2?pretrained=true", "efficientnet_lite0?pretrained=true")
DEFAULT_TRAIN_SIZE = 32  # imagefolder's default side, so trained models are evaluated as trained


@flow(name=names.ATTRIBUTE_ROBUSTNESS, flow_run_name="attributes-{run_label}")
def attribute_robustness(
    models: list[str] = list(DEMO_MODELS),  # noqa: B006  (Prefect shows the defaults)
    edits: str | None = None,
    objects: str | None = None,
    editors: list[str] | None = None,
    train_dataset: str | None = None,
    train_methods: list[str] = [],  # noqa: B006
    train_arch: str = "small_cnn",
    train_epochs: int = 5,
    train_image_size: int | None = None,
    train_workers: int = 2,
    train_options: dict[str, Any] | None = None,
    train_method_options: dict[str, dict[str, Any]] | None = None,
    label_map: dict[str, list[str]] | None = None,
    skip_unmapped: bool = False,
    image_size: int | None = None,
    shard_size: int = 32,
    bootstrap: int = 1000,
    seed: int = 0,
    run_label: str = "imagenet-e",
) -> dict[str, Any]:
    """Evaluate ``models`` (and classifiers trained here) on attribute edits; returns the
    leaderboard rows, the predictions stage and the run id.

    ``image_size`` resizes the edits for non-ImageNet models (ImageNet ones always see 224²);
    trained models see ``train_image_size`` (default 32, what they were trained at).
    ``train_options`` are further ``adversarial_train`` arguments for every method (e.g.
    ``batch_size``, ``lr``, ``max_steps_per_epoch``); ``train_method_options`` sets one
    method's options by its name, e.g. ``{"pgd_at": {"steps": 3}}`` (a budget-bound run)."""
    if (edits is None) == (objects is None):
        raise ConfigError("give either edits (an attribute_edits stage) or objects (a masked_objects dataset to edit)")
    if train_methods and not train_dataset:
        raise ConfigError("train_methods need a train_dataset (imagefolder:DIR or stage:<flow>/<run>/<stage>)")
    settings = load_settings()
    store = ArtifactStore(settings.effective_store_url, settings)
    spec = StoreSpec.of(store)
    if edits is None:
        edits = stages.make_edits_task(spec, str(objects), list(editors or []), seed)
    edits = str(stages.stage_ref(edits))
    all_models = list(dict.fromkeys(models))
    sizes: dict[str, int | None] = {m: image_size for m in all_models}
    trained: list[dict[str, Any]] = []
    if train_methods:
        dataset = stages.train_dataset_task(spec, str(train_dataset))
        size = train_image_size or DEFAULT_TRAIN_SIZE
        for method in train_methods:
            result = adversarial_train(
                method=method.replace("-", "_"),
                dataset=dataset,
                arch=train_arch,
                epochs=train_epochs,
                workers=train_workers,
                image_size=size,
                seed=seed,
                method_options=(train_method_options or {}).get(method),
                **(train_options or {}),
            )
            model = f"run:{result['run_id']}/best"
            trained.append({"method": method, "model": model, "run_id": result["run_id"]})
            all_models.append(model)
            sizes[model] = size
    if not all_models:
        raise ConfigError("no models to evaluate: give models or train_methods")
    predicted = stages.predict_task(spec, edits, all_models, sizes, dict(label_map or {}), skip_unmapped, shard_size)
    run_id = f"attr-{stages.digest([edits, all_models, sizes, label_map, skip_unmapped, bootstrap, seed])}"
    board = stages.score_task(
        spec, edits, predicted["predictions"], run_id, all_models, predicted["skipped"], bootstrap, seed
    )
    stages.publish_summary(store.url, run_id, edits, board)
    return {"run_id": run_id, "edits": edits, "trained": trained, "prediction": predicted, "leaderboard": board}


def demo_attribute_robustness(editors: list[str] | None = None, bootstrap: int = 1000) -> dict[str, Any]:
    """The demo step: the embedded default — the bundled scikit-image photos (box → GrabCut
    mask, ingested as a ``grabcut`` dataset; a no-op the second time), every editor, under
    MobileNetV2 and EfficientNet-Lite0 with their real ImageNet weights."""
    from trustflow.data.embedded_objects import write_embedded_objects
    from trustflow.flows.ingest import ingest_flow

    settings = load_settings()
    source = write_embedded_objects(settings.home_dir / "embedded-objects")
    dataset = ingest_flow(source=str(source), kind="grabcut", store_url=settings.effective_store_url)
    result = attribute_robustness(
        models=list(DEMO_MODELS),
        objects=str(dataset["dataset_id"]),
        editors=editors,
        skip_unmapped=True,
        bootstrap=bootstrap,
        run_label="demo",
    )
    return {**result, "objects": dataset["dataset_id"]}


__all__ = ["DEMO_MODELS", "attribute_robustness", "demo_attribute_robustness"]
