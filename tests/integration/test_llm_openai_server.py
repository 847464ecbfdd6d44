"""A real ``transformers serve`` (SmolLM2-135M converted from its packaged GGUF) started with
``trustflow llm serve``, used through the OpenAI backend, compared with the in-process
transformers backend, and stopped with ``trustflow llm stop``.

The converted model directory is cached under ``$TRUSTFLOW_MODEL_CACHE`` (when set) or this
session's ``TRUSTFLOW_HOME``, so it is built at most once per session (~30 s on 2 cores).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trustflow.infra.processes import free_port, port_open

pytestmark = pytest.mark.integration

PROMPTS = [
    ("en", "What is the capital of France? Answer in one sentence."),
    ("zh", "用一句话介绍一下北京。"),
    ("en", "Name three primary colors."),
    ("zh", "天空为什么是蓝色的？请简短回答。"),
]
LLM_CLI = "import sys; from trustflow.cli.llm import llm_app; sys.argv[0] = 'trustflow llm'; llm_app()"


def llm_cli(args: list[str], env: dict[str, str], timeout: int = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", LLM_CLI, *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def _json_block(text: str) -> dict:
    """The JSON object the command printed (libraries may log lines before it)."""
    start = text.index("{\n") if not text.startswith("{") else 0
    return json.loads(text[start : text.rindex("}") + 1])


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    env = dict(os.environ, TRUSTFLOW_HOME=str(tmp_path_factory.mktemp("llm-home")), HF_HUB_OFFLINE="1")
    # the converted model is shared with the session home (not this test's home): built once
    from trustflow.models.llm.packaged import cache_dir

    env.setdefault("TRUSTFLOW_MODEL_CACHE", str(cache_dir()))
    return env


@pytest.fixture(scope="module")
def served(cli_env: dict[str, str]):
    """``trustflow llm serve pkg:smollm2-135m`` on a free loopback port; stopped afterwards."""
    from trustflow.models.llm.serve import LLMServer

    port = free_port()
    state = Path(cli_env["TRUSTFLOW_HOME"]) / "llm-server"
    t0 = time.perf_counter()
    up = llm_cli(["serve", "pkg:smollm2-135m", "--port", str(port)], cli_env)
    try:
        assert up.returncode == 0, up.stderr + up.stdout
        status = _json_block(up.stdout)
        spec = status["spec"]
        assert f"use it: {spec}" in up.stdout.replace("\n", "")
        assert spec.startswith(f"openai:http://127.0.0.1:{port}/v1#")
        print(f"\n[llm] serve (convert if needed + start + /health): {time.perf_counter() - t0:.1f}s")
        yield {"spec": spec, "port": port, "pid": status["pid"]}
    finally:
        down = llm_cli(["stop"], cli_env)
        LLMServer(state).down()  # no-op unless the CLI failed: only our own pid file is used
    assert down.returncode == 0 and "stopped" in down.stdout, down.stderr
    assert not port_open(port)
    assert LLMServer(state).process.running_pid() is None


def test_status_reports_the_running_server(served: dict, cli_env: dict[str, str]) -> None:
    status = _json_block(llm_cli(["status"], cli_env).stdout)
    assert status["running"] and status["healthy"] and status["pid"] == served["pid"]
    assert status["spec"] == served["spec"] and status["engine"] == "transformers"


def test_openai_backend_batch_against_transformers_serve(served: dict) -> None:
    from trustflow.models.llm.spec import load_backend

    backend = load_backend(served["spec"], max_concurrency=2, timeout_s=120)
    requests = [
        {"messages": [{"role": "user", "content": text}], "max_tokens": 16, "id": lang + str(i)}
        for i, (lang, text) in enumerate(PROMPTS)
    ]
    t0 = time.perf_counter()
    results = backend.generate(requests)
    wall = time.perf_counter() - t0
    try:
        assert [r.id for r in results] == ["en0", "zh1", "en2", "zh3"]
        for r in results:
            assert r.ok, r.error
            assert r.text.strip()
            assert r.finish_reason in ("stop", "length")
            assert r.prompt_tokens > 0 and 0 < r.completion_tokens <= 16
        assert backend.max_in_flight == 2  # the bound held, and was used
        u = backend.usage
        assert u.requests == 4 and u.errors == 0
        assert u.completion_tokens == sum(r.completion_tokens for r in results)
        assert u.prompt_tokens == sum(r.prompt_tokens for r in results)
        print(
            f"\n[llm] transformers serve: 4 requests, {u.completion_tokens} tokens in {wall:.1f}s = "
            f"{u.completion_tokens / wall:.1f} tok/s (concurrency 2)"
        )
        # transformers serve ignores logprobs: the request still succeeds, logprobs are None
        lp = backend.generate([{"messages": "Say hi.", "max_tokens": 4, "logprobs": True, "top_logprobs": 2}])[0]
        assert lp.ok and lp.logprobs is None
    finally:
        backend.close()


def test_dead_port_gives_error_results_after_bounded_retries() -> None:
    from trustflow.models.llm.openai_backend import OpenAIBackend

    port = free_port()  # nobody listens here
    backend = OpenAIBackend(
        f"http://127.0.0.1:{port}/v1", "m", max_retries=2, connect_timeout_s=0.5, timeout_s=2, backoff_base_s=0.05
    )
    t0 = time.perf_counter()
    results = backend.generate([{"messages": "hi", "max_tokens": 4}] * 3)
    elapsed = time.perf_counter() - t0
    backend.close()
    assert all(not r.ok and r.finish_reason == "error" and "after 3 attempts" in r.error for r in results)
    assert backend.attempts == 3 * 3  # 1 try + 2 retries per request
    assert elapsed < 5


def test_cli_chat_against_the_server(served: dict, cli_env: dict[str, str]) -> None:
    out = llm_cli(["chat", served["spec"], "What is 2+2?", "-n", "12"], cli_env)
    assert out.returncode == 0, out.stderr
    assert "finish=" in out.stdout and "completion_tokens=" in out.stdout
    assert out.stdout.split("finish=")[0].strip()


def test_in_process_backend_on_real_smollm2_matches_the_server(served: dict) -> None:
    from trustflow.models.llm.spec import load_backend

    t0 = time.perf_counter()
    local = load_backend("pkg:smollm2-135m")  # the converted copy is cached: loads in seconds
    load_s = time.perf_counter() - t0
    remote = load_backend(served["spec"])
    try:
        request = {"messages": [{"role": "user", "content": PROMPTS[0][1]}], "max_tokens": 16}
        mine = local.generate([dict(request, logprobs=True, top_logprobs=2)])[0]
        theirs = remote.generate([request])[0]
        assert mine.ok and theirs.ok
        assert mine.text.strip() and mine.text == theirs.text  # same weights, greedy, fp32
        assert mine.prompt_tokens == theirs.prompt_tokens and mine.completion_tokens == theirs.completion_tokens
        assert (
            mine.logprobs
            and all(e.logprob <= 0 for e in mine.logprobs)
            and len(mine.logprobs) == mine.completion_tokens
        )
        print(f"\n[llm] in-process load {load_s:.1f}s; {mine.completion_tokens} tokens in {mine.latency_s:.2f}s")
    finally:
        local.close()
        remote.close()
