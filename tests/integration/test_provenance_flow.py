"""The provenance pipeline through the CLI and a real SeaweedFS: Ray Train with the
fingerprint option, then (below) embed → attack → trace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from trustflow import names
from trustflow.data.store import ArtifactStore, StageRef

pytestmark = [pytest.mark.integration]


def _env(tmp_path: Path, s3_settings: Any, seaweedfs: Any) -> dict[str, str]:
    return dict(
        os.environ,
        TRUSTFLOW_HOME=str(tmp_path / "home"),
        TRUSTFLOW_STORE_URL=s3_settings.store_url,
        TRUSTFLOW_S3_ENDPOINT_URL=seaweedfs.endpoint_url,
        TRUSTFLOW_RAY_NUM_CPUS="2",
    )


def _cli(env: dict[str, str], *args: str, timeout: int = 300) -> Any:
    done = subprocess.run(
        [sys.executable, "-m", "trustflow.cli.main", *args, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_ray_train_with_fingerprint_stores_the_checkpoints_fingerprint(tmp_path: Path, s3_settings, seaweedfs) -> None:  # noqa: ANN001
    """One epoch of standard training on Ray Train (2 workers) with ``--fingerprint net.3``: the
    final checkpoint, loaded back, carries the module, and its extracted fingerprint equals the
    ``fingerprint`` stage stored beside it, value for value."""
    from trustflow.data.schemas import FINGERPRINT
    from trustflow.models.fingerprint.checkpoint import load_model
    from trustflow.models.fingerprint.module import extract_fingerprint, fingerprint_layers

    env = _env(tmp_path, s3_settings, seaweedfs)
    result = _cli(
        env,
        "train",
        "--method",
        "standard",
        "--dataset",
        "digits",
        "--epochs",
        "1",
        "--workers",
        "2",
        "--batch-size",
        "64",
        "--fingerprint",
        "net.3",
        "--run-id",
        "fp-train",
    )
    assert result["run_id"] == "fp-train"
    store = ArtifactStore(settings=s3_settings)
    ref = StageRef(names.ADVERSARIAL_TRAIN, "fp-train", names.FINGERPRINT)
    manifest = store.require_manifest(ref)
    assert manifest.schema_name == FINGERPRINT.name
    stored = store.read_table(ref).to_pylist()
    local = tmp_path / "final.pt"
    local.write_bytes(store.read_bytes(store.path("runs", names.ADVERSARIAL_TRAIN, "fp-train", "model", "final.pt")))
    model = load_model(local)
    assert list(fingerprint_layers(model)) == ["net.3"]
    fp = extract_fingerprint(model)
    rows = sorted(
        (r for r in stored if r["model"] == "final"), key=lambda r: (r["filter"], r["channel"], r["u"], r["v"])
    )
    d, c, p = fp.shape
    assert len(rows) == d * c * p and d == 32 and c == 16
    assert {(r["grid_m"], r["grid_n"]) for r in rows} == {fp.grid}
    values = np.array([complex(r["real"], r["imag"]) for r in rows]).reshape(d, c, -1)
    order = np.lexsort((fp.freqs[:, 1], fp.freqs[:, 0]))  # rows are sorted by (u, v) within a (filter, channel)
    np.testing.assert_array_equal(values, fp.values[:, :, order])
    assert {r["model"] for r in stored} == {"final", "best"}
