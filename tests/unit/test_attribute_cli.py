"""``trustflow robustness edits preview`` and the bad-dataset-id errors of ``make`` and
``preview``: what a user sees, in-process (no Ray: a preview edits one object here, and a
bad id fails before any edit). ``make`` on a real dataset runs on Ray:
tests/integration/test_attribute_cli.py."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner, Result

from trustflow.cli.main import app
from trustflow.data.schemas import MASKED_OBJECTS
from trustflow.data.store import ArtifactStore
from trustflow.settings import load_settings
from trustflow.tasks.attributes.preview import CAPTION_PX
from trustflow.tasks.ingest.common import stage_ref
from trustflow.tasks.ingest.kinds.synthetic_objects import build_synthetic_rows

runner = CliRunner()
DATASET = "synthetic-test"
EDITORS = ["original", "size?ratios=0.3,0.1", "position?places=left,centre,right"]


@pytest.fixture()
def store_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ArtifactStore:
    """A file store holding one small masked_objects dataset, named to the CLI by env."""
    monkeypatch.setenv("TRUSTFLOW_STORE_URL", f"file://{tmp_path / 'store'}")
    monkeypatch.setenv("TRUSTFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)  # preview's default --out is ./preview.png
    store = ArtifactStore(settings=load_settings())
    rows = build_synthetic_rows((0, 40, 0, 3))  # 3 objects, 40² (the generator, no Ray)
    store.write_stage(stage_ref(DATASET, MASKED_OBJECTS.name), MASKED_OBJECTS, rows, ["object_id"])
    return store


def preview(out: Path, *extra: str) -> Result:
    editor_args = [a for spec in EDITORS for a in ("--editor", spec)]
    return runner.invoke(
        app, ["robustness", "edits", "preview", "--objects", DATASET, "--out", str(out), *editor_args, *extra]
    )


def test_preview_writes_one_grid_row_per_editor(store_env: ArtifactStore, tmp_path: Path) -> None:
    out = tmp_path / "grid.png"
    result = preview(out, "--object", "synthetic-0-000001")
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output
    grid = Image.open(io.BytesIO(out.read_bytes()))
    assert grid.format == "PNG"
    cell = 160  # preview_grid's default cell side
    assert grid.height == len(EDITORS) * (cell + CAPTION_PX)  # one row per editor
    assert grid.width == 3 * cell  # the widest row: position's three places
    # the object asked for, not the first: another object gives another grid
    first = tmp_path / "first.png"
    assert preview(first).exit_code == 0
    assert first.read_bytes() != out.read_bytes()


@pytest.mark.parametrize("command", ["make", "preview"])
def test_a_bad_dataset_id_is_one_error_line(store_env: ArtifactStore, tmp_path: Path, command: str) -> None:
    result = runner.invoke(app, ["robustness", "edits", command, "--objects", "no-such-dataset"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[0].startswith("error:") and "no-such-dataset" in lines[0] and "masked_objects" in lines[0]
    assert "Traceback" not in result.output and len(lines) <= 2  # one message (wrapped at most once)
    assert not (tmp_path / "preview.png").exists()


def test_preview_of_an_unknown_object_names_it(store_env: ArtifactStore) -> None:
    result = runner.invoke(app, ["robustness", "edits", "preview", "--objects", DATASET, "--object", "nope"])
    assert result.exit_code == 1
    assert result.output.startswith("error:") and "'nope'" in result.output and "Traceback" not in result.output
