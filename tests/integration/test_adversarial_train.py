"""Ray Train with 2 DDP workers checkpointing into SeaweedFS: killed mid-run, resumed, finished,
then evaluated from the store checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trustflow import names
from trustflow.data.store import ArtifactStore, StageRef

pytestmark = [pytest.mark.integration]


def _checkpoints(settings, run_id: str) -> list[str]:  # noqa: ANN001
    from trustflow.data.store.location import s3_client

    store = ArtifactStore(settings=settings)
    prefix = (
        f"{store.location.root.split('/', 1)[1]}/runs/{names.ADVERSARIAL_TRAIN}/{run_id}/ray/"
        if "/" in store.location.root
        else f"runs/{names.ADVERSARIAL_TRAIN}/{run_id}/ray/"
    )
    listed = s3_client(settings).list_objects_v2(Bucket=store.location.bucket, Prefix=prefix)
    return sorted(
        {
            k["Key"].split("/checkpoint_")[1].split("/")[0]
            for k in listed.get("Contents", [])
            if "/checkpoint_" in k["Key"]
        }
    )


def test_two_worker_training_survives_a_kill_and_resumes(tmp_path: Path, s3_settings, seaweedfs) -> None:  # noqa: ANN001
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
        "train",
        "--method",
        "fgsm-rs",
        "--dataset",
        "digits",
        "--epochs",
        "4",
        "--workers",
        "2",
        "--batch-size",
        "32",
        "--lr",
        "0.05",
        "--run-id",
        "killme",
        "--json",
    ]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None and len(_checkpoints(s3_settings, "killme")) < 1:
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)  # driver, Ray, both workers
    proc.wait(timeout=30)
    before = _checkpoints(s3_settings, "killme")
    assert before, "no checkpoint reached the store before the kill"
    store = ArtifactStore(settings=s3_settings)
    assert store.manifest(StageRef(names.ADVERSARIAL_TRAIN, "killme", names.EPOCHS)) is None  # it really was cut short

    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)  # stdout is exactly one JSON document
    epochs = store.read_table(StageRef(names.ADVERSARIAL_TRAIN, "killme", names.EPOCHS)).to_pylist()
    assert [r["epoch"] for r in epochs] == [0, 1, 2, 3]  # every epoch exactly once: resumed, not restarted
    assert [r["epoch"] for r in result["epochs"]] == [0, 1, 2, 3]
    assert all(0.0 <= r["pgd_acc"] <= r["probe_clean_acc"] + 1e-9 for r in epochs if not r["co"])
    assert epochs[-1]["probe_clean_acc"] > 0.5  # digits are learnable in 4 epochs even adversarially
    for which in ("best", "final"):
        assert (
            len(store.read_bytes(store.path("runs", names.ADVERSARIAL_TRAIN, "killme", "model", f"{which}.pt"))) > 1000
        )

    evaluated = subprocess.run(
        [
            sys.executable,
            "-m",
            "trustflow.cli.main",
            "robustness",
            "eval",
            "--model",
            "run:killme",
            "--attacks",
            "clean,fgsm,pgd",
            "--corruptions",
            "gaussian_noise",
            "--severities",
            "1,5",
            "--limit",
            "120",
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    summary = json.loads(evaluated.stdout)["summary"]  # stdout is exactly one JSON document
    robust = summary["robust_accuracy"]
    assert summary["clean_accuracy"] > 0.5
    assert max(robust.values()) <= summary["clean_accuracy"] + 1e-9
    assert set(summary["corruption_accuracy"]) == {"gaussian_noise"}
