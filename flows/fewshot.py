"""Few-shot adaptation flow (issue 18, phase 2): ``fewshot_adapt``.

(methods × sets × shots × seeds) episodes on one frozen backbone with a CLIP-style attention
pool fan out on Ray (one task per chunk of a set's episodes), each a keyed row of the
``episodes`` stage — resumable per (method, set, k, seed): a rerun writes no row, new seeds or
methods make a new run. With ``robustness`` each adapted model's attack and corruption
accuracy is compared with the unadapted prototype head of the same episode. Then the
leaderboard (mean ± std over seeds per (method, set, k)), the plots and Prefect artifacts.

The stages are in ``tasks/fewshot/stages.py``; this flow only composes them.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from trustflow import names
from trustflow.data.store import ArtifactStore
from trustflow.settings import load_settings
from trustflow.tasks.fewshot import stages
from trustflow.tasks.ray_parts import StoreSpec

DEFAULT_METHODS = ("prototype", "linear_probe", "tip_adapter_f", "safe", "safe_a")
DEMO_METHODS = ("prototype", "linear_probe", "tip_adapter_f", "safe")
DEFAULT_CORRUPTIONS = ("gaussian_noise", "defocus_blur", "fog", "contrast", "jpeg_compression")


def _store() -> ArtifactStore:
    settings = load_settings()
    return ArtifactStore(settings.effective_store_url, settings)


def run_config(**options: Any) -> dict[str, Any]:
    """The run's configuration as stored (lists, not tuples), checked: one ``ConfigError``."""
    config = {
        **options,
        "methods": list(options["methods"]),
        "sets": list(options["sets"]),
        "shots": [int(k) for k in options["shots"]],
        "seeds": [int(s) for s in options["seeds"]],
        "corruptions": list(options["corruptions"]),
    }
    stages.check_config(config)
    return config


@flow(name=names.FEWSHOT_ADAPT, flow_run_name="fewshot-{run_label}")
def fewshot_adapt(
    methods: list[str] = list(DEFAULT_METHODS),  # noqa: B006  (Prefect shows the defaults)
    sets: list[str] = ["digits", "lfw-subset"],  # noqa: B006
    shots: list[int] = [1, 2, 4, 8, 16],  # noqa: B006
    seeds: list[int] = [0, 1],  # noqa: B006
    backbone: str = "efficientnet_lite0?size=96",
    epochs: int = 10,
    n_query: int | None = 300,
    robustness: bool = True,
    robust_n: int = 50,
    corruptions: list[str] = list(DEFAULT_CORRUPTIONS),  # noqa: B006
    chunks_per_set: int = 2,
    parallel: bool = True,
    run_label: str = "fewshot",
    edits: str | None = None,
) -> dict[str, Any]:
    """Adapt ``backbone`` with each method on k-shot episodes of each set; returns the run id,
    the episodes stage's counts and the leaderboard. ``edits`` (an attribute_edits stage) adds
    the set ``edits:<export>``: few-shot on the edit set's originals, every adapted model and
    the unadapted backbone also scored per edited attribute (``deltas``: ``attr:``/``drop:``)."""
    store = _store()
    spec = StoreSpec.of(store)
    if edits:
        sets = [*sets, stages.edits_set_task(spec, edits)]
    config = run_config(
        methods=methods,
        sets=sets,
        shots=shots,
        seeds=seeds,
        backbone=backbone,
        epochs=epochs,
        n_query=n_query,
        robustness=robustness,
        robust_n=robust_n,
        corruptions=corruptions,
        chunks_per_set=chunks_per_set,
    )
    units = stages.plan_units(config)
    run_id = stages.run_id_of(config)
    computed = stages.episodes_task(spec, run_id, config, units, parallel)
    board = stages.score_task(spec, run_id, computed["episodes"])
    stages.publish_summary(store.url, run_id, board)
    return {"run_id": run_id, "episodes": computed, "leaderboard": board}


def demo_fewshot() -> dict[str, Any]:
    """The demo step: prototype, linear probe, Tip-Adapter-F and SAFE on digits at k = 1, 4 with
    two seeds, on the packaged EfficientNet-Lite0 at 64 px, robustness (FGSM, PGD-5, two
    corruptions) on 40 query images."""
    return fewshot_adapt(
        methods=list(DEMO_METHODS),
        sets=["digits"],
        shots=[1, 4],
        seeds=[0, 1],
        backbone="efficientnet_lite0?size=64",
        epochs=10,
        n_query=200,
        robust_n=40,
        corruptions=["gaussian_noise", "contrast"],
        run_label="demo",
    )


__all__ = ["DEFAULT_CORRUPTIONS", "DEFAULT_METHODS", "DEMO_METHODS", "demo_fewshot", "fewshot_adapt", "run_config"]
