"""``trustflow robustness edits make --objects <dataset id>`` as users run it: a real
process (its own local Ray) edits an ingested ``masked_objects`` dataset, prints the edits
stage, and a rerun prints the same stage without editing anything again."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from trustflow.data.schemas import MASKED_OBJECTS
from trustflow.data.store import ArtifactStore, Manifest, StageRef
from trustflow.settings import load_settings
from trustflow.tasks.ingest.common import stage_ref
from trustflow.tasks.ingest.kinds.synthetic_objects import build_synthetic_rows

pytestmark = [pytest.mark.integration]

CLI = [sys.executable, "-m", "trustflow.cli.main"]
EDITORS = ["original", "size?ratios=0.3,0.1", "position?places=left,right"]  # 1 + 2 + 2 levels


def test_make_prints_the_edits_stage_and_a_rerun_reuses_it(tmp_path: Path) -> None:
    store_url = f"file://{tmp_path / 'store'}"
    env = dict(
        os.environ,
        TRUSTFLOW_HOME=str(tmp_path / "home"),
        TRUSTFLOW_STORE_URL=store_url,
        TRUSTFLOW_RAY_NUM_CPUS="2",
    )
    store = ArtifactStore(settings=load_settings(store_url=store_url, home=tmp_path / "home"))
    objects = build_synthetic_rows((0, 40, 0, 6))
    store.write_stage(stage_ref("shapes", MASKED_OBJECTS.name), MASKED_OBJECTS, objects, ["object_id"])
    argv = [*CLI, "robustness", "edits", "make", "--objects", "shapes", *[a for e in EDITORS for a in ("--editor", e)]]

    def make() -> tuple[StageRef, Manifest]:
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        found = re.search(r"edits: (\S+/\S+/\S+)", proc.stdout)
        assert found, proc.stdout
        ref = StageRef(*found.group(1).split("/"))
        manifest = store.manifest(ref)
        assert manifest is not None  # committed
        assert f"--edits {found.group(1)}" in " ".join(proc.stdout.split())  # how to evaluate it
        return ref, manifest

    ref, first = make()
    table = store.read_table(ref)
    assert first.rows == table.num_rows == 6 * 5
    assert sorted(set(table["attribute"].to_pylist())) == ["original", "position", "size"]
    assert first.attrs["objects_dataset"] == "shapes"
    again, second = make()
    assert again == ref
    assert second.created_at == first.created_at  # the stage was reused, not committed again
    assert sorted(p.name for p in second.parts) == sorted(p.name for p in first.parts)  # no new part
    assert store.read_table(ref).num_rows == 6 * 5  # no new rows
