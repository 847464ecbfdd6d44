"""The S-Eval evaluation flow end to end (Prefect ephemeral + Ray actors), resumable.

Targets are a tiny random model (mechanics only) and the critic is the refusal detector,
so the test runs in seconds; the real models are exercised by the LLM backend tests.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.compute as pc
import pytest

from trustflow.data.store import ArtifactStore, StageRef
from trustflow.flows.seval_evaluate import seval_evaluate
from trustflow.infra.prefect_runtime import prefect_runtime

pytestmark = [pytest.mark.integration]


def test_flow_on_seed_suite_then_rerun_is_a_no_op(local_settings, tiny_llm: str, ray_cluster) -> None:  # noqa: ANN001
    kwargs = dict(
        targets=[tiny_llm],
        critic="refusal",
        suite="seed-suite",
        langs=["zh", "en"],
        per_dimension=1,
        attacks_per_base=1,
        max_tokens=8,
        batch_size=4,
    )
    with prefect_runtime(local_settings):
        first = seval_evaluate(**kwargs)
    store = ArtifactStore(settings=local_settings)
    run = first["run_id"]
    suite = store.read_table(StageRef("seval_evaluate", run, "suite"))
    assert suite.num_rows == 32  # 8 dimensions x 2 languages, each with 1 attack variant
    responses = store.read_table(StageRef("seval_evaluate", run, "responses"))
    judgements = store.read_table(StageRef("seval_evaluate", run, "judgements"))
    assert responses.num_rows == judgements.num_rows == 32
    assert set(responses["prompt_uid"].to_pylist()) == set(suite["prompt_uid"].to_pylist())
    assert pc.all(pc.less_equal(responses["completion_tokens"], 8)).as_py()
    (board,) = first["leaderboard"]
    assert board["model"] == tiny_llm and board["judgements"] == 32
    metrics = store.read_table(StageRef("seval_evaluate", run, "metrics")).to_pylist()
    per_dim = [m for m in metrics if m["metric"] == "safety_score" and m["dimension"] != "*" and m["lang"] != "*"]
    assert len(per_dim) == 16 and all(m["n"] == 1 for m in per_dim)
    assert any(p.endswith("safety_heatmap.png") for p in first["plots"])
    assert (
        Path(store.location.root) / "runs" / "seval_evaluate" / run / "plots" / "asr_per_attack.png"
    ).stat().st_size > 1000

    parts_before = len(store.require_manifest(StageRef("seval_evaluate", run, "responses")).parts)
    with prefect_runtime(local_settings):
        again = seval_evaluate(**kwargs)
    assert again["run_id"] == run
    assert len(store.require_manifest(StageRef("seval_evaluate", run, "responses")).parts) == parts_before
    assert store.read_table(StageRef("seval_evaluate", run, "judgements")).num_rows == 32

    # the LLM response cache: a new run (new run id) of the same suite answers from the store
    assert first["cache"]["by"][tiny_llm] == {"lookups": 32, "hits": 0, "hit_rate": 0.0}
    with prefect_runtime(local_settings):
        other = seval_evaluate(**kwargs, run_id="seval-cache-rerun")
    assert other["cache"]["by"][tiny_llm] == {"lookups": 32, "hits": 32, "hit_rate": 1.0}
    attrs = store.require_manifest(StageRef("seval_evaluate", "seval-cache-rerun", "responses")).attrs
    assert attrs["cache"][tiny_llm]["cache_hits"] == 32  # kept with the run's responses stage
    texts = {
        r: dict(zip(t["prompt_uid"].to_pylist(), t["response"].to_pylist(), strict=True))
        for r in (run, "seval-cache-rerun")
        for t in [store.read_table(StageRef("seval_evaluate", r, "responses"))]
    }
    assert texts[run] == texts["seval-cache-rerun"]


def test_killed_run_resumes_without_duplicates(tmp_path: Path, tiny_llm: str) -> None:
    env = dict(
        os.environ,
        TRUSTFLOW_HOME=str(tmp_path / "home"),
        TRUSTFLOW_STORE_URL=f"file://{tmp_path / 'store'}",
        TRUSTFLOW_RAY_NUM_CPUS="2",
    )
    args = [
        sys.executable,
        "-m",
        "trustflow.cli.main",
        "seval",
        "run",
        "--targets",
        tiny_llm,
        "--critic",
        "refusal",
        "--suite",
        "seed-suite",
        "--limit",
        "2",
        "--attacks-per-base",
        "2",
        "--batch-size",
        "1",
        "--max-tokens",
        "24",
        "--run-id",
        "killme",
        "--rationale-model",
        "none",  # the CLI's default rationale model (Qwen2.5-1.5B) would dominate this test's time
    ]
    parts = tmp_path / "store" / "runs" / "seval_evaluate" / "killme" / "responses" / "parts"
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and len(list(parts.glob("part-*.parquet"))) < 5 and proc.poll() is None:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole job dies: driver, Ray, actors
    proc.wait(timeout=30)
    written = len(list(parts.glob("part-*.parquet")))
    assert written >= 5, "the run finished or failed before it could be killed"
    assert not (parts.parent / "_manifest.json").exists()

    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    store = ArtifactStore(f"file://{tmp_path / 'store'}")
    suite = store.read_table(StageRef("seval_evaluate", "killme", "suite"))
    responses = store.read_table(StageRef("seval_evaluate", "killme", "responses"))
    assert suite.num_rows == 78  # all 26 seed prompts (some dimensions have < 2 per language) x (1 + 2 attacks)
    assert responses.num_rows == suite.num_rows
    assert sorted(responses["prompt_uid"].to_pylist()) == sorted(suite["prompt_uid"].to_pylist())
    # batch size 1, 78 prompts: parts of ceil(78 / 64) = 2 rows (tasks/ray_parts.missing_chunks), the
    # resumed remainder in parts of 1 or 2 — never more rows per part than that, none lost
    parts_written = store.require_manifest(StageRef("seval_evaluate", "killme", "responses")).parts
    assert max(p.rows for p in parts_written) == 2 and sum(p.rows for p in parts_written) == 78
    assert store.read_table(StageRef("seval_evaluate", "killme", "judgements")).num_rows == 78
