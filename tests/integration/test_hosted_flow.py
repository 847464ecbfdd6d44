"""The S-Eval flow against a priced hosted endpoint (the fault server on 127.0.0.1, with
injected 429s): a cost limit stops the flow before the responses are committed, the rerun
resumes without duplicate rows or calls, and the result's usage block sums the row costs.
Seconds: 8 seed prompts, refusal critic, no model, no Ray."""

from __future__ import annotations

import pytest

from trustflow.data.store import ArtifactStore, StageRef
from trustflow.flows.seval_evaluate import seval_evaluate
from trustflow.infra.prefect_runtime import prefect_runtime
from trustflow.settings import Settings
from trustflow.tasks.seval.responses import BudgetReached
from trustflow.tests.fault_server import Faults, FaultServer


def test_cost_limit_stops_the_flow_and_a_rerun_resumes(
    local_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FaultServer(Faults(p429=0.1, retry_after=0.01, seed=2)) as srv:
        for key, value in {
            "BASE_URL": srv.base_url,
            "MODEL": "m",
            "PRICE_PER_1K_PROMPT": "1.0",
            "PRICE_PER_1K_COMPLETION": "2.0",
            "RPM": "6000",
        }.items():
            monkeypatch.setenv(f"TRUSTFLOW_LLM_ENDPOINTS__paid__{key}", value)
        monkeypatch.setenv("TRUSTFLOW_STORE_URL", local_settings.effective_store_url)
        monkeypatch.setenv("TRUSTFLOW_HOME", str(local_settings.home))
        kwargs = dict(
            targets=["endpoint:paid"],
            critic="refusal",
            suite="seed-suite",
            langs=["en"],
            attacks_per_base=0,
            max_tokens=8,
            batch_size=2,
            concurrency=1,
            run_id="seval-hosted",
        )
        store = ArtifactStore(settings=local_settings)
        ref = StageRef("seval_evaluate", "seval-hosted", "responses")
        with prefect_runtime(local_settings), pytest.raises(BudgetReached, match="seval-hosted"):
            seval_evaluate(**kwargs, token_limit=20)
        assert store.manifest(ref) is None and 0 < len(srv.served) < 8
        stopped = len(srv.served)
        with prefect_runtime(local_settings):
            result = seval_evaluate(**kwargs)
    responses = store.read_table(ref)
    assert responses.num_rows == 8 and len(set(responses["prompt_uid"].to_pylist())) == 8
    assert len(srv.served) == 8 and stopped < 8  # the rerun asked only for the rest
    usage = result["usage"]["by_model"]["endpoint:paid"]
    assert usage["cost_usd"] == pytest.approx(sum(responses["cost_usd"].to_pylist())) and usage["cost_usd"] > 0
    assert usage["prompt_tokens"] == sum(responses["prompt_tokens"].to_pylist())
    metrics = store.read_table(StageRef("seval_evaluate", "seval-hosted", "metrics")).to_pylist()
    (cost,) = [m for m in metrics if m["metric"] == "cost_usd"]
    assert cost["model"] == "endpoint:paid" and cost["n"] == 8 and cost["value"] == pytest.approx(usage["cost_usd"])
