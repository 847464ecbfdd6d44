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
    return json.loads(done.stdout)  # stdout is exactly one JSON document


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


def _parts(store: ArtifactStore, flow: str, run_id: str) -> dict[str, int]:
    """Rows per stage of a run, counted over every part file on storage (committed or not)."""
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    out = {}
    for ref, _ in store.list_stages(flow, run_id):
        files = store.fs.get_file_info(pafs.FileSelector(store.path(ref.relpath, "parts")))
        out[ref.stage] = sum(pq.read_metadata(f.path, filesystem=store.fs).num_rows for f in files)
    return out


def test_embed_attack_trace_recovers_the_source_and_a_rerun_adds_nothing(
    tmp_path: Path, s3_settings, seaweedfs
) -> None:  # noqa: ANN001
    """Two fingerprinted sources and an independent model (Fashion-MNIST); ``fingerprint attack``
    makes a combined-attack descendant (permute + scale + fine-tune on digits) of one source,
    given to ``trace`` as a suspect of unknown truth; the trace also attacks each source for
    its calibration pool. Through SeaweedFS: every descendant goes to its own source, the
    independent model to none; the same trace again writes no row."""
    env = _env(tmp_path, s3_settings, seaweedfs)
    embedded = _cli(
        env, "fingerprint", "embed", "--seeds", "0,1,2", "--epochs", "1", "--limit", "1200", "--run-id", "emb"
    )
    assert embedded["sources"] == ["embed:emb/s0", "embed:emb/s1", "embed:emb/s2"]
    attacked = _cli(
        env, "fingerprint", "attack", "embed:emb/s1", "--attack", "combined?lr=0.01&limit=400", "--run-id", "att"
    )
    (leak,) = attacked["descendants"]
    assert leak["ref"].startswith("attack:att/s1.combined.") and leak["source"] == "embed:emb/s1"
    args = (
        "fingerprint",
        "trace",
        "--sources",
        "embed:emb/s0,embed:emb/s1",
        "--independents",
        "embed:emb/s2",
        "--suspects",
        leak["ref"],
        "--attack",
        "combined?lr=0.01&limit=400",
        "--probe-size",
        "64",
        "--run-id",
        "tr",
    )
    traced = _cli(env, *args)
    ours = {v["suspect"]: v for v in traced["verdicts"] if v["method"] == "ours"}
    descendants = {d["ref"]: d["source"] for d in traced["descendants"]}
    assert sorted(descendants.values()) == ["embed:emb/s0", "embed:emb/s1"]
    for ref, source in descendants.items():
        assert ours[ref]["traced_to"] == source, ours[ref]
    assert ours["embed:emb/s2"]["traced_to"] is None
    assert ours[leak["ref"]]["traced_to"] == "embed:emb/s1" and ours[leak["ref"]]["known"] is False
    assert traced["summary"]["ours"]["accuracy"] == 1.0
    store = ArtifactStore(settings=s3_settings)
    before = {**_parts(store, names.FINGERPRINT_TRACE, "tr"), **_parts(store, names.FINGERPRINT_ATTACK, "tr")}
    assert before == {names.SCORES: 4 * 2 * 3, names.VERDICTS: 4 * 3, names.DESCENDANTS: 2}
    again = _cli(env, *args)
    after = {**_parts(store, names.FINGERPRINT_TRACE, "tr"), **_parts(store, names.FINGERPRINT_ATTACK, "tr")}
    assert after == before
    assert {(r["suspect"], r["source"], r["method"]) for r in again["scores"]} == {
        (r["suspect"], r["source"], r["method"]) for r in traced["scores"]
    }
    assert (
        store.read_bytes(store.path("runs", names.FINGERPRINT_TRACE, "tr", "plots", "rho_vs_lr.png"))[:4] == b"\x89PNG"
    )
