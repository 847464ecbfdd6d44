"""The attribute robustness flow end to end, as users run it: ``trustflow robustness edits
eval --json`` in a real process against SeaweedFS, on edits made here (a tiny masked shape set
with its originals and a test-only flip). One call has the flow train its own small CNN
(FGSM-LAW on Ray Train) and evaluates it beside an ImageNet classifier (with a label map)
and a checkpoint; the same call again writes no prediction row; the report renders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trustflow import names
from trustflow.data.store import ArtifactStore, StageRef

pytestmark = [pytest.mark.integration]

CLI = [sys.executable, "-m", "trustflow.cli.main"]
MOBILENET = "mobilenet_v2?pretrained=true"


def _run_json(argv: list[str], env: dict[str, str]) -> dict:
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"stdout is not one JSON document: {proc.stdout[:500]!r}")


def _env(tmp_path: Path, settings, seaweedfs) -> dict[str, str]:  # noqa: ANN001
    return dict(
        os.environ,
        TRUSTFLOW_HOME=str(tmp_path / "home"),
        TRUSTFLOW_STORE_URL=settings.store_url,
        TRUSTFLOW_S3_ENDPOINT_URL=seaweedfs.endpoint_url,
        TRUSTFLOW_RAY_NUM_CPUS="2",
    )


def _trained_cnn(tmp_path: Path) -> str:
    """A small CNN fitted in-process on other objects of the same classes (a ckpt: file)."""
    import numpy as np
    import torch

    from trustflow.models.vision import build_classifier, save_checkpoint
    from trustflow.tests.attribute_fixtures import CLASSES, objects

    torch.manual_seed(0)
    objs = objects(20, 32, seed=1)
    x = torch.from_numpy(np.stack([o.image for o in objs])).permute(0, 3, 1, 2).float() / 255
    y = torch.tensor([sorted(CLASSES).index(o.label) for o in objs])
    model = build_classifier("small_cnn?width=8", num_classes=3)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(60):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return f"ckpt:{save_checkpoint(tmp_path / 'cnn.pt', model.eval(), 'small_cnn?width=8')}"


def test_cli_trains_evaluates_resumes_and_reports(tmp_path: Path, s3_settings, seaweedfs) -> None:  # noqa: ANN001
    """One CLI call does it all (two used to take ~185 s): an ImageNet classifier under a label
    map that leaves one label unmapped (skipped), a checkpoint, and a small CNN the flow trains
    first (FGSM-LAW on Ray Train, 1 epoch); then the same call again adds nothing."""
    from trustflow.tasks.report import build_run_report
    from trustflow.tests.attribute_fixtures import edit_rows, objects, write_edits, write_imagefolder

    store = ArtifactStore(settings=s3_settings)
    edits = write_edits(store, StageRef(names.ATTRIBUTE_ROBUSTNESS, "e-int", names.EDITS), edit_rows(objects(4, 32)))
    cnn = _trained_cnn(tmp_path)
    train_dir = write_imagefolder(objects(12, 32, seed=1), tmp_path / "train")
    env = _env(tmp_path, s3_settings, seaweedfs)
    argv = [
        *CLI, "robustness", "edits", "eval", "--edits", str(edits), "--model", MOBILENET, "--model", cnn,
        "--label-map", "disc=ping-pong ball|golf ball", "--label-map", "square=9",  # an index works too
        "--skip-unmapped",  # triangle has no ImageNet class here; the CNNs' own classes need no entry
        "--train-dataset", f"imagefolder:{train_dir}", "--train-methods", "fgsm-law",
        "--train-epochs", "1", "--train-workers", "1", "--shard-size", "8", "--json",
    ]  # fmt: skip
    first = _run_json(argv, env)
    [trained] = first["trained"]
    assert trained["method"] == "fgsm-law" and trained["model"] == f"run:{trained['run_id']}/best"
    models = {MOBILENET, cnn, trained["model"]}
    # 12 objects × (original + flip) = 24 edits; MobileNetV2 skips the 4 triangles' 8 images
    assert first["prediction"]["skipped"] == {MOBILENET: 8, cnn: 0, trained["model"]: 0}
    assert first["prediction"]["rows_written"] == 16 + 24 + 24
    assert first["prediction"]["chunks"] == 2 + 3 + 3  # Ray tasks: per model, shards of 8 of its edits
    board = first["leaderboard"]
    assert {r["model"] for r in board} == models
    assert {(r["attribute"], r["level"]) for r in board} == {("original", "original"), ("flip", "1")}
    for r in board:
        assert r["objects"] == (8 if r["model"] == MOBILENET else 12)
        assert r["drop_low"] <= r["drop_top1"] <= r["drop_high"]
        assert (r["top5"] is None) == (r["model"] != MOBILENET)  # 3 classes: no top-5
    cnn_original = next(r for r in board if r["model"] == cnn and r["attribute"] == "original")
    assert cnn_original["top1"] > 0.8  # the evaluation's preprocessing and class order match training

    preds = StageRef(*first["prediction"]["predictions"].split("/"))
    assert store.read_table(preds).num_rows == 64
    again = _run_json(argv, env)
    assert again["prediction"]["rows_written"] == 0 and again["prediction"]["chunks"] == 0
    assert again["trained"] == first["trained"]  # the training run resumed as finished: same model
    assert store.read_table(preds).num_rows == 64  # no duplicates
    assert again["run_id"] == first["run_id"]
    assert json.dumps(again["leaderboard"], sort_keys=True) == json.dumps(board, sort_keys=True)

    html = build_run_report(store, first["run_id"])
    assert "Attribute robustness" in html and "Accuracy per edit level" in html and "data:image/png" in html
