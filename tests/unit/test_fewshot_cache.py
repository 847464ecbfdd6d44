"""The shared episode cache (issue 18, phase 3): a run that adds a method or seed to a
finished run's settings reuses the episodes that run computed, in-process on a tiny store."""

from __future__ import annotations

from typing import Any

import torch

from trustflow import names
from trustflow.data.store import ArtifactStore, StageRef
from trustflow.flows.fewshot import run_config
from trustflow.tasks.fewshot.stages import cache_ref, episodes_task, plan_units, run_id_of
from trustflow.tasks.ray_parts import StoreSpec

BASE: dict[str, Any] = {
    "methods": ["prototype"],
    "sets": ["lfw-subset"],
    "shots": [1],
    "seeds": [0],
    "backbone": "tiny_cnn?width=4&size=16",
    "epochs": 1,
    "n_query": 20,
    "robustness": False,
    "robust_n": 5,
    "corruptions": [],
    "chunks_per_set": 1,
}


def run(store: ArtifactStore, **changes: Any) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    config = run_config(**{**BASE, **changes})
    run_id = run_id_of(config)
    stats = episodes_task.fn(StoreSpec.of(store), run_id, config, plan_units(config), parallel=False)
    rows = store.read_table(StageRef(names.FEWSHOT_ADAPT, run_id, names.EPISODES)).to_pylist()
    return stats, {r["row_key"]: r for r in rows}


def test_a_new_run_reuses_the_episodes_an_earlier_run_computed(local_settings) -> None:  # noqa: ANN001
    torch.set_num_threads(1)
    store = ArtifactStore(settings=local_settings)
    first, rows1 = run(store)
    assert first["rows_written"] == 1 and first["units_from_cache"] == 0
    assert cache_ref(run_config(**BASE), "lfw-subset") == cache_ref(
        run_config(**{**BASE, "seeds": [0, 3]}), "lfw-subset"
    )
    second, rows2 = run(store, methods=["prototype", "linear_probe"])  # a method added: only it runs
    assert second["units_from_cache"] == 1 and second["rows_written"] == 1 and second["chunks"] == 1
    key = "prototype|lfw-subset|1|0"
    assert rows2[key] == rows1[key] and len(rows2) == 2
    third, rows3 = run(store, methods=["linear_probe"])  # all cached: nothing runs
    assert third["units_from_cache"] == 1 and third["rows_written"] == 0 and third["chunks"] == 0
    assert list(rows3.values()) == [rows2["linear_probe|lfw-subset|1|0"]]
    # other result-affecting settings are another cache: everything runs
    other, _ = run(store, epochs=2)
    assert other["units_from_cache"] == 0 and other["rows_written"] == 1
