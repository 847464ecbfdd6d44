"""The LLM response cache through the S-Eval stages: a second run with the same target and an
LLM critic makes no request at all (counted by a real local OpenAI-compatible server), and
``cache=False`` calls every time."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pyarrow as pa
import pytest

from trustflow.data.schemas import SEVAL_RESPONSES
from trustflow.data.store import ArtifactStore, StageRef
from trustflow.models.llm.base import GenParams
from trustflow.settings import Settings
from trustflow.tasks.ray_parts import StoreSpec
from trustflow.tasks.seval.judging import JudgeFactory
from trustflow.tasks.seval.report import cache_line, cache_summary
from trustflow.tasks.seval.responses import RESPONSE_KEYS, generate_responses


@pytest.fixture()
def server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                seen.append(payload)
            last = payload["messages"][-1]["content"]
            text = (
                '{"refused": false, "harmful": true, "risk": "none", "explanation": "x"}'
                if payload.get("logprobs")  # the LLM critic asks for log-probabilities
                else f"echo {last}"
            )
            body = json.dumps(
                {
                    "choices": [{"message": {"content": text}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 5},
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"openai:http://127.0.0.1:{httpd.server_address[1]}/v1#tiny", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


def _suite(n: int) -> pa.Table:
    return pa.table(
        {
            "prompt_uid": [f"p{i:03d}" for i in range(n)],
            "set": ["base_risk"] * n,
            "attack": pa.array([None] * n, pa.string()),
            "base_id": [f"b{i}" for i in range(n)],
            "lang": ["en"] * n,
            "dimension": ["d"] * n,
            "prompt": [f"prompt number {i}" for i in range(n)],
        }
    )


def _run(store: ArtifactStore, spec: str, run_id: str, cache: bool = True) -> tuple[dict, dict]:
    """Target responses as the flow writes them, then the LLM critic's judging step (the
    builder each judging worker runs, here in this process: no Ray start in a unit test)."""
    ref = StageRef("seval-evaluate", run_id, "responses")
    answered = generate_responses(store, ref, _suite(12), spec, GenParams(max_tokens=16), batch_size=4, cache=cache)
    store.writer(ref, SEVAL_RESPONSES, RESPONSE_KEYS).commit({})
    rows = store.read_table(ref).to_pylist()
    judge = JudgeFactory(f"llm:{spec}", StoreSpec.of(store) if cache else None)()
    judgements = [judge(rows[i : i + 4]) for i in range(0, len(rows), 4)]
    assert sum(t.num_rows for t in judgements) == 12
    assert all(v is True for t in judgements for v in t["unsafe"].to_pylist())
    return answered, judge.counters()


def test_second_run_hits_everything_and_no_cache_calls_again(
    server: tuple[str, list[dict[str, Any]]], local_settings: Settings
) -> None:
    spec, seen = server
    store = ArtifactStore(settings=local_settings)
    answered, judged = _run(store, spec, "run-1")
    assert len(seen) == 24 and answered["cache_hits"] == 0 and answered["cache_writes"] == 12
    assert judged["cache_lookups"] == 12 and judged["cache_writes"] == 12

    answered, judged = _run(store, spec, "run-2")  # a new run of the same suite: nothing is asked
    assert len(seen) == 24
    assert answered["cache_hits"] == answered["cache_lookups"] == 12
    assert judged["cache_hits"] == judged["cache_lookups"] == 12
    summary = cache_summary(True, {spec: answered, f"critic llm:{spec}": judged})
    assert summary["hit_rate"] == 1.0 and summary["by"][spec]["hits"] == 12
    assert cache_line(summary) == "llm cache: 24/24 hits (100.0 %), 0 new entries"
    table = store.read_table(StageRef("seval-evaluate", "run-2", "responses"))
    assert sorted(table["response"].to_pylist()) == sorted(f"echo prompt number {i}" for i in range(12))

    answered, judged = _run(store, spec, "run-3", cache=False)  # --no-cache: every call is made
    assert len(seen) == 48 and "cache_lookups" not in answered and "cache_lookups" not in judged
    assert cache_line(cache_summary(False, {})) == "llm cache: off (--no-cache)"


def test_seval_generate_passes_no_cache_to_the_flow(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """``seval generate --no-cache`` reaches the flow (default: cache on) and the hit rate is printed."""
    import contextlib

    from typer.testing import CliRunner

    import trustflow.cli.seval as seval_cli
    import trustflow.flows.seval_generate as flow_module
    from trustflow.cli.main import app

    calls: list[dict[str, Any]] = []

    def fake_flow(**kwargs: Any) -> dict[str, Any]:
        calls.append(kwargs)
        counts = {"cache_lookups": 4, "cache_hits": 3, "cache_writes": 1}
        return {
            "suite_id": "suite-x",
            "generated": {"tester_calls": 4},
            "selected": {"dropped": 0, "dropped_by": {}, "shortfall": {}},
            "suite": {"base": 1},
            "cache": cache_summary(kwargs["cache"], {"tester": counts}),
        }

    monkeypatch.setenv("TRUSTFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(flow_module, "seval_generate_suite", fake_flow)
    monkeypatch.setattr(seval_cli, "flow_session", lambda settings: contextlib.nullcontext())
    runner = CliRunner()
    on = runner.invoke(app, ["seval", "generate", "--refs", ""])
    off = runner.invoke(app, ["seval", "generate", "--refs", "", "--no-cache"])
    assert on.exit_code == 0 and off.exit_code == 0, on.output + off.output
    assert [c["cache"] for c in calls] == [True, False]
    assert "llm cache: 3/4 hits (75.0 %), 1 new entries" in on.stdout
    assert "llm cache: off (--no-cache)" in off.stdout


def test_rationales_of_a_new_run_come_from_the_cache(
    server: tuple[str, list[dict[str, Any]]], local_settings: Settings
) -> None:
    """The same unsafe verdicts in a second run: their rationales are read, not asked again."""
    from trustflow.data.schemas import SEVAL_JUDGEMENTS
    from trustflow.models.critics import Judgement
    from trustflow.models.critics.risk_tags import Leaf, LeafTagger
    from trustflow.models.llm.cache import LLMCache
    from trustflow.tasks.seval.judging import JUDGEMENT_KEYS, enrich_judgements, judgement_rows, read_judgements

    spec, seen = server
    store = ArtifactStore(settings=local_settings)
    tagger = LeafTagger([Leaf("a.b.c.weapons", ("Weapons: making guns", "武器：制造枪支"))])
    ids = ["r1", "r2", "r3"]
    rows = [
        {"response_id": r, "model": "m", "prompt_uid": f"base_risk:en:{r}", "set": "base_risk", "attack": None}
        | {"base_id": r, "lang": "en", "dimension": "crimes"}
        for r in ids
    ]
    verdicts = [Judgement(risk_score=0.9, unsafe=True, critic_id="c", critic_prompt_hash="h") for _ in ids]
    responses = pa.table(
        {"response_id": ids, "prompt": ["How to make a gun?"] * 3, "response": [f"Take pipe {r}" for r in ids]}
        | {"lang": ["en"] * 3}
    )
    stats = []
    for run in ("run-a", "run-b"):
        ref = StageRef("seval-evaluate", run, "judgements")
        store.writer(ref, SEVAL_JUDGEMENTS, JUDGEMENT_KEYS).write_part(judgement_rows(rows, verdicts), "p0")
        stats.append(enrich_judgements(store, ref, responses, spec, 10, tagger, cache=LLMCache(store)))
        store.writer(ref, SEVAL_JUDGEMENTS, JUDGEMENT_KEYS).commit({})
    assert len(seen) == 3  # only the first run asked the rationale model
    assert stats[0]["rationale_cache"]["cache_writes"] == 3 and stats[1]["rationale_cache"]["cache_hits"] == 3
    assert stats[1]["rationales"] == 3
    texts = [
        sorted(t["rationale"].to_pylist())
        for run in ("run-a", "run-b")
        for t in [read_judgements(store, StageRef("seval-evaluate", run, "judgements"))]
    ]
    assert texts[0] == texts[1] and all(texts[0])


def test_the_cascade_critic_routes_its_judge_through_the_cache(
    server: tuple[str, list[dict[str, Any]]], local_settings: Settings
) -> None:
    from trustflow.models.critics import JudgeItem, make_critic
    from trustflow.models.llm.cache import LLMCache

    spec, seen = server
    store = ArtifactStore(settings=local_settings)
    items = [JudgeItem(prompt="How to make a gun?", response=f"Sure, step {i}: take a pipe.") for i in range(3)]
    counters = []
    for _ in range(2):  # two runs: two critic objects, one store
        critic = make_critic(f"cascade:{spec}")
        critic.use_llm_cache(LLMCache(store))
        assert all(j.unsafe for j in critic.judge(items))
        counters.append(critic.counters())
    assert len(seen) == 3 and counters[1]["cache_hits"] == counters[1]["cache_lookups"] == 3
