"""A writer SIGKILLed mid-stage leaves nothing that looks whole; a re-run completes exactly."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trustflow.data.store import ArtifactStore
from trustflow.errors import StageNotFound

pytestmark = pytest.mark.integration

WRITER = Path(__file__).with_name("writer_proc.py")
N_PARTS, PER_PART = 6, 1000


def _run_and_kill(args: list[str], after_parts: int) -> None:
    proc = subprocess.Popen([sys.executable, str(WRITER), *args], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    seen = 0
    deadline = time.monotonic() + 120
    while seen < after_parts and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("part"):
            seen += 1
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert seen == after_parts and proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_sigkill_mid_stage_then_rerun(backend: str, tmp_path: Path, request) -> None:  # noqa: ANN001
    sys.path.insert(0, str(WRITER.parent))
    from writer_proc import REF  # type: ignore[import-not-found]

    if backend == "local":
        settings = request.getfixturevalue("local_settings")
        extra: list[str] = []
    else:
        settings = request.getfixturevalue("s3_settings")
        extra = [settings.s3_endpoint_url]
    url = settings.effective_store_url
    _run_and_kill([url, str(N_PARTS), str(PER_PART), "0.5", *extra], after_parts=3)

    store = ArtifactStore(url, settings)
    with pytest.raises(StageNotFound):
        store.read_table(REF)
    assert store.list_stages() == []

    done = subprocess.run(
        [sys.executable, str(WRITER), url, str(N_PARTS), str(PER_PART), "0", *extra],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("part") == N_PARTS - 3  # only the missing parts were written
    table = store.read_table(REF)
    assert table.num_rows == N_PARTS * PER_PART
    assert sorted(table["k"].to_pylist()) == list(range(N_PARTS * PER_PART))
