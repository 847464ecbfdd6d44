"""The attribute-robustness inputs and edits on a real local Ray: ingest kinds through the
ingestion flow, and ``make_edits`` resuming a killed run without duplicates."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.compute as pc
import pytest

from trustflow.data.embedded_objects import EMBEDDED, write_embedded_objects
from trustflow.data.masked_objects import decode_mask
from trustflow.data.schemas import ATTRIBUTE_EDITS, MASKED_OBJECTS
from trustflow.data.store import ArtifactStore, StageRef
from trustflow.flows.ingest import ingest_flow
from trustflow.infra.prefect_runtime import prefect_runtime
from trustflow.settings import Settings
from trustflow.tasks.attributes.make import build_editor, edit_rows, make_edits

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ray_cluster")]
SPECS = ["original", "position?places=left,right", "size?ratios=0.2,0.1"]


def run_ingest(settings: Settings, source: Path, kind: str) -> dict:
    with prefect_runtime(settings):
        return ingest_flow(source=str(source), kind=kind, store_url=settings.effective_store_url)


def test_embedded_default_and_synthetic_set_ingest_as_masked_objects(local_settings: Settings, tmp_path: Path) -> None:
    store = ArtifactStore(settings=local_settings)
    info = run_ingest(local_settings, write_embedded_objects(tmp_path / "embedded"), "grabcut")
    assert info["tables"] == {MASKED_OBJECTS.name: len(EMBEDDED)}
    rows = store.read_table(StageRef("ingest", info["dataset_id"], MASKED_OBJECTS.name)).to_pylist()
    by_id = {r["object_id"]: r for r in rows}
    assert by_id["coffee"]["label"] == "espresso" and by_id["coffee"]["mask_source"] == "grabcut"
    assert by_id["rocket"]["box"] == [288.0, 120.0, 70.0, 290.0]
    assert 0.3 < decode_mask(by_id["coffee"]["mask_png"]).mean() < 0.7
    (tmp_path / "synthetic_objects.json").write_text(json.dumps({"seed": 2, "per_class": 3, "size": 40}))
    info = run_ingest(local_settings, tmp_path / "synthetic_objects.json", "synthetic-objects")
    assert info["tables"] == {MASKED_OBJECTS.name: 15}
    assert run_ingest(local_settings, tmp_path / "synthetic_objects.json", "synthetic-objects")["skipped"]


def test_make_edits_resumes_a_killed_run_without_duplicates(local_settings: Settings, tmp_path: Path) -> None:
    from trustflow.tasks.ingest.kinds.synthetic_objects import build_synthetic_rows

    store = ArtifactStore(settings=local_settings)
    objects = build_synthetic_rows((0, 40, 0, 5))
    ref = StageRef("attribute_robustness", "run-1", "attribute_edits")
    levels = sum(len(build_editor(s)[0].levels()) for s in SPECS)
    # a killed run: one object's edits written as a part of its own, and nothing committed
    writer = store.writer(ref, ATTRIBUTE_EDITS, ["edit_id"])
    done = edit_rows(objects.slice(0, 1).to_pylist(), SPECS, seed=3)
    writer.write_part(done, "killed")
    manifest = make_edits(store, ref, objects, SPECS, seed=3, objects_per_part=2)
    assert manifest.rows == 5 * levels
    table = store.read_table(ref)
    assert pc.count_distinct(table["edit_id"]).as_py() == table.num_rows == 5 * levels
    kept = table.filter(pc.equal(table["object_id"], done["object_id"][0]))
    assert sorted(kept["image_png"].to_pylist()) == sorted(done["image_png"].to_pylist())  # same pixels
    again = make_edits(store, ref, objects, SPECS, seed=3, objects_per_part=2)  # a re-run: a no-op
    assert again.rows == manifest.rows and sorted(p.name for p in again.parts) == sorted(p.name for p in manifest.parts)
