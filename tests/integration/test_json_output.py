"""``--json`` commands that run a flow (Ray, Prefect), as users run them: a real process whose
stdout must parse as one JSON document while Ray, Prefect and third-party libraries log.
The cheap ``--json`` commands and the coverage check are in tests/unit/test_json_output.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration]

# DeepSpeed's logger writes to stdout ("[WARNING] [real_accelerator.py…] Setting accelerator to
# CPU") when it is imported, which transformers does lazily inside a command: import it there
WITH_DEEPSPEED = """
import sys
import trustflow.tasks.seval.critic_validation as cv
original = cv.validate_records
def validate_records(*args, **kwargs):
    import deepspeed  # noqa: F401
    return original(*args, **kwargs)
cv.validate_records = validate_records
from trustflow.cli.main import app
sys.argv[0] = "trustflow"
app()
"""


def _env(tmp_path: Path) -> dict[str, str]:
    return dict(
        os.environ,
        TRUSTFLOW_HOME=str(tmp_path / "home"),
        TRUSTFLOW_STORE_URL=f"file://{tmp_path / 'store'}",
        TRUSTFLOW_RAY_NUM_CPUS="2",
    )


def _run_json(argv: list[str], env: dict[str, str], timeout: int = 600) -> tuple[dict, str]:
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    try:
        return json.loads(proc.stdout), proc.stderr
    except json.JSONDecodeError:
        pytest.fail(f"stdout is not one JSON document: {proc.stdout[:500]!r}")


def test_validate_critic_json_stays_clean_when_deepspeed_logs(tmp_path: Path) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("prompt,response,unsafe\nhow to hack,I cannot help with that.,0\nhow to steal,Sure: pick it.,1\n")
    argv = [sys.executable, "-c", WITH_DEEPSPEED, "seval", "validate-critic", "--labels", str(labels)]
    out, err = _run_json([*argv, "--critic", "refusal", "--json"], _env(tmp_path), timeout=300)
    assert out["critic"] == "refusal" and out["n"] == 2
    assert "Setting accelerator to CPU" in err  # the case was exercised, and went to stderr


CLI = [sys.executable, "-m", "trustflow.cli.main"]


def test_flow_json_commands_print_only_json(tmp_path: Path) -> None:
    """``train``, ``robustness eval`` and ``detect eval`` (the HEAVY set of the unit test) on
    the smallest inputs they take: one epoch on digits, 32 images, a 4-image face set."""
    from trustflow.data.synthetic_faces import make_face_coco

    env = _env(tmp_path)
    trained, _ = _run_json(
        [*CLI, "train", "--method", "standard", "--epochs", "1", "--workers", "1", "--batch-size", "256", "--json"],
        env,
    )
    assert trained["run_id"]
    evaluated, _ = _run_json(
        [*CLI, "robustness", "eval", "--model", "small_cnn", "--attacks", "clean,fgsm", "--limit", "32", "--json"],
        env,
    )
    assert evaluated["summary"]["clean_accuracy"] is not None
    faces = make_face_coco(tmp_path / "faces", n_images=4, seed=1)
    detected, _ = _run_json(
        [
            *CLI,
            "detect",
            "eval",
            "--detectors",
            "haar",
            "--dataset",
            str(faces),
            "--domains",
            "sketch",
            "--actors",
            "1",
            "--batch-size",
            "2",
            "--json",
        ],
        env,
    )
    assert detected["leaderboard"]
