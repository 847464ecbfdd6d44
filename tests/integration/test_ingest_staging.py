"""Staged ingestion on a real local Ray: the driver's source is moved away after the kind
has planned its chunks and before any Ray task runs, so a worker that opened a driver path
would fail; with ``stage_sources=always`` the ingest still lands the same dataset id and the
same rows as an unstaged ingest of the untouched source."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from trustflow.data.sources import fingerprint
from trustflow.data.store import ArtifactStore, StageRef
from trustflow.data.synthetic_coco import make_synthetic_coco
from trustflow.flows.ingest import ingest_flow
from trustflow.infra.prefect_runtime import prefect_runtime
from trustflow.settings import Settings, StageSources, load_settings
from trustflow.tasks.ingest.staging import stage_source

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ray_cluster")]


def _maskfolder(root: Path) -> Path:
    rng = np.random.default_rng(3)
    for label in ("cup", "key"):
        (root / label).mkdir(parents=True)
        for i in range(3):
            img = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
            mask = np.zeros((24, 32), np.uint8)
            mask[4 + i : 16, 6 : 20 + i] = 255
            Image.fromarray(img).save(root / label / f"{i}.png")
            Image.fromarray(mask).save(root / label / f"{i}.mask.png")
    return root


def _coco(root: Path) -> Path:
    return make_synthetic_coco(root, n_images=6, seed=4, size=(64, 48))


def _ingest(settings: Settings, source: Path, kind: str, stage: StageSources) -> dict[str, Any]:
    with prefect_runtime(settings):
        return ingest_flow(source=str(source), kind=kind, store_url=settings.effective_store_url, stage_sources=stage)


def _rows(settings: Settings, dataset_id: str, stage: str, key: str) -> list[dict[str, Any]]:
    table = ArtifactStore(settings=settings).read_table(StageRef("ingest", dataset_id, stage))
    return table.sort_by(key).to_pylist()


def _move_source_before_ray(monkeypatch: pytest.MonkeyPatch, module: str, source: Path, away: Path) -> None:
    """The kind's ``write_parts_on_ray`` first moves the source away: chunks are planned (on
    the driver, from the real files), Ray tasks have not started."""
    import importlib

    mod = importlib.import_module(module)
    real: Callable[..., dict[str, int]] = mod.write_parts_on_ray

    def moved_then_real(*args: Any, **kwargs: Any) -> dict[str, int]:
        source.rename(away)
        return real(*args, **kwargs)

    monkeypatch.setattr(mod, "write_parts_on_ray", moved_then_real)


@pytest.mark.parametrize(
    ("kind", "make", "module", "stage", "key"),
    [
        ("maskfolder", _maskfolder, "trustflow.tasks.ingest.common", "masked_objects", "object_id"),
        ("coco", _coco, "trustflow.tasks.ingest.kinds.coco", "images", "image_id"),
    ],
)
def test_staged_ingest_never_reads_the_driver_path(
    kind: str,
    make: Callable[[Path], Path],
    module: str,
    stage: str,
    key: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = make(tmp_path / "src")
    plain_settings = load_settings(store_url=f"file://{tmp_path / 'plain'}", home=tmp_path / "home")
    staged_settings = load_settings(store_url=f"file://{tmp_path / 'staged'}", home=tmp_path / "home")
    fp = fingerprint(source)
    worker_cache = Path(tempfile.gettempdir()) / "trustflow-staged" / fp[:32]
    shutil.rmtree(worker_cache, ignore_errors=True)
    try:
        plain = _ingest(plain_settings, source, kind, "never")

        _move_source_before_ray(monkeypatch, module, source, tmp_path / "away")
        if kind == "maskfolder":  # the move bites: unstaged, the workers fail on the driver's path
            with pytest.raises(Exception, match="src/"):
                _ingest(load_settings(store_url=f"file://{tmp_path / 'bitten'}"), source, kind, "never")
            (tmp_path / "away").rename(source)
        info = _ingest(staged_settings, source, kind, "always")
        assert not source.exists()
        assert info["dataset_id"] == plain["dataset_id"] and info["tables"] == plain["tables"]
        assert _rows(staged_settings, info["dataset_id"], stage, key) == _rows(
            plain_settings, plain["dataset_id"], stage, key
        )  # every column: a row's recorded source path is the source's, not the worker's copy
        assert worker_cache.is_dir()  # the workers read their node's copy

        (tmp_path / "away").rename(source)
        store = ArtifactStore(settings=staged_settings)
        assert stage_source(store, source, fp)[1]["uploaded"] == 0  # a rerun uploads nothing
        staged_files = Path(store.location.root) / "staging" / fp / "files"
        assert sum(1 for p in staged_files.rglob("*") if p.is_file()) == len(
            [p for p in source.rglob("*") if p.is_file()]
        )
        # unstaged, the store holds no copy of the source
        assert not (Path(ArtifactStore(settings=plain_settings).location.root) / "staging").exists()
    finally:
        shutil.rmtree(worker_cache, ignore_errors=True)
