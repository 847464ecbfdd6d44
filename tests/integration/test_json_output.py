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


# The flow commands (train, robustness eval, detect eval, fingerprint ...) are held to "stdout is
# exactly one JSON document" by the integration tests that run them anyway: test_adversarial_train,
# test_detector_eval and test_provenance_flow parse their whole stdout with json.loads.
