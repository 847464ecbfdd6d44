"""Detector robustness end to end on SeaweedFS: a generated face set, two shifted domains, MTCNN
and Haar on Ray Data; killed mid-inference, resumed without duplicates; COCO scoring by CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trustflow.data.store import ArtifactStore, StageRef

pytestmark = [pytest.mark.integration]


def _detection_parts(settings) -> list[str]:  # noqa: ANN001
    from trustflow.data.store.location import s3_client

    store = ArtifactStore(settings=settings)
    listed = s3_client(settings).list_objects_v2(Bucket=store.location.bucket, Prefix="")
    return [k["Key"] for k in listed.get("Contents", []) if "/detections/parts/part-" in k["Key"]]


def test_detector_eval_survives_a_kill_resumes_and_scores(tmp_path: Path, s3_settings, seaweedfs) -> None:  # noqa: ANN001
    from trustflow.data.synthetic_faces import make_face_coco

    faces = make_face_coco(tmp_path / "faces", n_images=10, seed=3)
    env = dict(
        os.environ,
        TRUSTFLOW_HOME=str(tmp_path / "home"),
        TRUSTFLOW_STORE_URL=s3_settings.store_url,
        TRUSTFLOW_S3_ENDPOINT_URL=seaweedfs.endpoint_url,
        TRUSTFLOW_RAY_NUM_CPUS="2",
    )
    args = [
        sys.executable,
        "-m",
        "trustflow.cli.main",
        "detect",
        "eval",
        "--detectors",
        "haar,mtcnn",
        "--dataset",
        str(faces),
        "--domains",
        "sketch,weather",
        "--batch-size",
        "2",
        "--actors",
        "1",
        "--part-rows",
        "4",
        "--json",
    ]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline and proc.poll() is None and len(_detection_parts(s3_settings)) < 2:
        time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGKILL)  # driver, Ray and its actors
    proc.wait(timeout=30)
    assert len(_detection_parts(s3_settings)) >= 2, "no detections reached the store before the kill"

    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)  # stdout is exactly one JSON document
    store = ArtifactStore(settings=s3_settings)
    rows = store.read_table(StageRef("detector_evaluate", f"infer-{result['dataset_id']}", "detections")).to_pylist()
    keys = [(r["detector"], r["domain"], r["image_id"]) for r in rows]
    assert len(keys) == len(set(keys)) == 2 * 3 * 10  # every (detector, domain, image) exactly once after the resume
    assert sum(r["resumed"] for r in result["inference"]) > 0  # the second run really skipped work

    metrics = {(m["detector"], m["domain"]): m for m in result["metrics"]}
    assert set(metrics) == {(d, dom) for d in ("haar", "mtcnn") for dom in ("original", "sketch", "weather")}
    assert all(m["images"] == 10 for m in metrics.values())
    assert metrics[("mtcnn", "original")]["AP50"] > 0.6  # real faces, real detector
    board = {r["detector"]: r for r in result["leaderboard"]}
    assert set(board) == {"haar", "mtcnn"}
    for r in board.values():
        ood = (metrics[(r["detector"], "sketch")]["AP"] + metrics[(r["detector"], "weather")]["AP"]) / 2
        assert r["ood_map"] == pytest.approx(ood)
        assert r["effective_robustness"] == pytest.approx(ood - 0.45 * r["id_map"])
    assert (
        store.read_bytes(store.path("runs", "detector_evaluate", result["run_id"], "plots", "id_vs_ood.png"))[:4]
        == b"\x89PNG"
    )

    # the CLI scorer on the same ground truth: perfect detections score 1.0, the same engine as the flow
    gt_path = faces / "annotations" / "instances_val2017.json"
    gt = json.loads(gt_path.read_text())
    dt_path = tmp_path / "perfect.json"
    dt_path.write_text(
        json.dumps(
            [{"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"], "score": 0.9} for a in gt["annotations"]]
        )
    )
    scored = subprocess.run(
        [
            sys.executable,
            "-m",
            "trustflow.cli.main",
            "detect",
            "score",
            "--gt",
            str(gt_path),
            "--dt",
            str(dt_path),
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert scored.returncode == 0, scored.stderr[-2000:]
    assert json.loads(scored.stdout)["AP"] == pytest.approx(1.0)
