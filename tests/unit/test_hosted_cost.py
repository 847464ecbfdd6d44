"""Cost of hosted targets through the S-Eval responses stage, against the fault server on
127.0.0.1: ``cost_usd`` on every row (0 for cache hits), a cost limit that stops cleanly
(parts kept, nothing committed, every paid answer written) and a rerun that resumes without
duplicate rows or calls, the dry-run's counts, and v1 parts upgraded on resume."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from trustflow import names
from trustflow.data.schemas import SEVAL_RESPONSES, SEVAL_RESPONSES_V1
from trustflow.data.store import ArtifactStore, StageRef
from trustflow.models.llm.base import GenParams
from trustflow.settings import Settings
from trustflow.tasks.seval.dry_run import plan_run
from trustflow.tasks.seval.responses import (
    RESPONSE_KEYS,
    Budget,
    BudgetReached,
    commit_responses,
    generate_responses,
    usage_by_model,
)
from trustflow.tasks.seval.stages import suite_table
from trustflow.tests.fault_server import Faults, FaultServer

SPEC = "endpoint:paid"
PER_CALL = (4 * 1.0 + 8 * 2.0) / 1000  # 4 prompt tokens at $1/1k + 8 completion tokens at $2/1k


@pytest.fixture()
def paid(monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultServer]:
    with FaultServer(Faults(p429=0.1, retry_after=0.01, seed=1)) as srv:
        monkeypatch.setenv("TRUSTFLOW_LLM_ENDPOINTS__paid__BASE_URL", srv.base_url)
        monkeypatch.setenv("TRUSTFLOW_LLM_ENDPOINTS__paid__MODEL", "m")
        monkeypatch.setenv("TRUSTFLOW_LLM_ENDPOINTS__paid__PRICE_PER_1K_PROMPT", "1.0")
        monkeypatch.setenv("TRUSTFLOW_LLM_ENDPOINTS__paid__PRICE_PER_1K_COMPLETION", "2.0")
        yield srv


def _suite(n: int) -> pa.Table:
    return pa.table(
        {
            "prompt_uid": [f"p{i:03d}" for i in range(n)],
            "set": ["base_risk"] * n,
            "attack": pa.array([None] * n, pa.string()),
            "base_id": [f"b{i}" for i in range(n)],
            "lang": ["en"] * n,
            "dimension": ["d"] * n,
            "prompt": [f"prompt nr {i:03d}" for i in range(n)],  # 14 characters: 4 prompt tokens at the server
        }
    )


def _parts_rows(store: ArtifactStore, ref: StageRef) -> pa.Table:
    return store.writer(ref, SEVAL_RESPONSES, RESPONSE_KEYS).existing_keys()


def test_cost_limit_stops_cleanly_and_a_rerun_resumes_without_duplicates(
    paid: FaultServer, local_settings: Settings
) -> None:
    store = ArtifactStore(settings=local_settings)
    ref = StageRef(names.SEVAL_EVALUATE, "run-cost", "responses")
    params = GenParams(max_tokens=16)
    with pytest.raises(BudgetReached, match=r"cost limit \$0.1 reached.*run-cost.*run the same command again"):
        generate_responses(
            store,
            ref,
            _suite(40),
            SPEC,
            params,
            batch_size=4,
            concurrency=2,
            cache=False,
            budget=Budget(cost_limit=0.1),
        )
    assert store.manifest(ref) is None  # nothing committed
    kept = _parts_rows(store, ref).num_rows
    assert 5 <= kept < 40  # stopped within the batches in flight once $0.10 (5 calls) was spent
    assert len(paid.served) == kept  # every paid answer is in a part: none lost

    stats = generate_responses(store, ref, _suite(40), SPEC, params, batch_size=4, concurrency=2, cache=False)
    commit_responses(store, ref, {})
    table = store.read_table(ref)
    assert table.num_rows == 40 and len(set(table["response_id"].to_pylist())) == 40
    assert len(paid.served) == 40 and stats["rows_written"] == 40 - kept  # no call made twice
    assert all(c == pytest.approx(PER_CALL) for c in table["cost_usd"].to_pylist())
    assert usage_by_model(table)[SPEC]["cost_usd"] == pytest.approx(40 * PER_CALL)
    assert stats["spent_cost_nusd"] == round((40 - kept) * PER_CALL * 1e9)


def test_token_limit_stops_and_cache_hits_cost_nothing(paid: FaultServer, local_settings: Settings) -> None:
    store = ArtifactStore(settings=local_settings)
    params = GenParams(max_tokens=16)
    first = StageRef(names.SEVAL_EVALUATE, "run-a", "responses")
    with pytest.raises(BudgetReached, match="token limit 30 reached"):
        generate_responses(
            store, first, _suite(24), SPEC, params, batch_size=4, concurrency=1, budget=Budget(token_limit=30)
        )
    generate_responses(store, first, _suite(24), SPEC, params, batch_size=4, concurrency=1)
    commit_responses(store, first, {})
    calls = len(paid.served)
    assert calls == 24  # the resumed pass asked only what the stopped one had not answered

    second = StageRef(names.SEVAL_EVALUATE, "run-b", "responses")  # same suite, new run: all cached
    stats = generate_responses(
        store, second, _suite(24), SPEC, params, batch_size=4, budget=Budget(cost_limit=1e-9, spent_cost=0.0)
    )
    commit_responses(store, second, {})
    table = store.read_table(second)
    assert len(paid.served) == calls and stats["cache_hits"] == 24
    assert pc.sum(table["cost_usd"]).as_py() == 0.0 and stats["spent_cost_nusd"] == 0


def test_dry_run_counts_what_is_left_after_resume_and_cache(paid: FaultServer, local_settings: Settings) -> None:
    store = ArtifactStore(settings=local_settings)
    opts = dict(suite="seed-suite", langs=["en"], per_dimension=1, attacks=[], attacks_per_base=0, seed=0)
    suite, _ = suite_table(store, **opts)  # type: ignore[arg-type]
    n = suite.num_rows
    plan = plan_run(store, "run-dry", [SPEC, "pkg:smollm2-135m"], max_tokens=16, **opts)  # type: ignore[arg-type]
    t = plan["targets"][SPEC]
    assert (t["prompts"], t["answered"], t["cache_hits"], t["requests"]) == (n, 0, 0, n)
    assert t["completion_tokens"] == 16 * n and t["prompt_tokens"] > 4 * n
    assert t["cost_usd"] == pytest.approx((t["prompt_tokens"] + 2 * t["completion_tokens"]) / 1000)
    local = plan["targets"]["pkg:smollm2-135m"]
    assert local["cost_usd"] is None and local["cache_hits"] is None and local["requests"] == n
    assert len(paid.arrivals) == 0  # a dry run calls nothing

    ref = StageRef(names.SEVAL_EVALUATE, "run-dry", "responses")
    half = suite.slice(0, n // 2)
    generate_responses(store, ref, half, SPEC, GenParams(max_tokens=16, seed=0), batch_size=4)
    left = plan_run(store, "run-dry", [SPEC], max_tokens=16, **opts)["targets"][SPEC]  # type: ignore[arg-type]
    assert (left["answered"], left["requests"]) == (n // 2, n - n // 2)
    other = plan_run(store, "run-other", [SPEC], max_tokens=16, **opts)["targets"][SPEC]  # type: ignore[arg-type]
    assert (other["answered"], other["cache_hits"], other["requests"]) == (0, n // 2, n - n // 2)


def test_v1_parts_are_upgraded_when_an_old_run_resumes(paid: FaultServer, local_settings: Settings) -> None:
    store = ArtifactStore(settings=local_settings)
    ref = StageRef(names.SEVAL_EVALUATE, "run-old", "responses")
    generate_responses(store, ref, _suite(8), SPEC, GenParams(max_tokens=16), batch_size=4, cache=False)
    table = store.read_table(ref) if store.manifest(ref) else None
    assert table is None
    # rewrite the parts as the v1 layout (no cost_usd), as an older trustflow left them
    writer = store.writer(ref, SEVAL_RESPONSES_V1, RESPONSE_KEYS)
    import pyarrow.parquet as pq

    for info in writer.part_files():
        old = pq.read_table(info.path, filesystem=store.fs).drop_columns(["cost_usd"])
        writer.write_part(old.cast(SEVAL_RESPONSES_V1.schema), info.base_name[5:-8])
    generate_responses(store, ref, _suite(12), SPEC, GenParams(max_tokens=16), batch_size=4, cache=False)
    commit_responses(store, ref, {})
    table = store.read_table(ref)
    costs = table.sort_by("prompt_uid")["cost_usd"].to_pylist()
    assert table.num_rows == 12 and costs[:8] == [None] * 8 and costs[8:] == [pytest.approx(PER_CALL)] * 4


def test_cli_dry_run_prints_requests_and_cost_and_calls_nothing(
    paid: FaultServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    import trustflow.flows.seval_evaluate as flow_module
    from trustflow.cli.main import app

    monkeypatch.setenv("TRUSTFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(flow_module, "seval_evaluate", lambda **kw: pytest.fail("a dry run must not start the flow"))
    args = ["seval", "run", "--targets", SPEC, "--suite", "seed-suite", "--langs", "en", "--attacks-per-base", "0"]
    out = CliRunner().invoke(app, [*args, "--max-tokens", "16", "--dry-run"])
    assert out.exit_code == 0, out.output
    text = " ".join(out.stdout.split())
    # 8 seed prompts; ~175 estimated prompt tokens at $1/1k + 8 x 16 completion tokens at $2/1k
    assert "dry run: 8 requests to make, ~175 prompt + ≤128 completion tokens, estimated cost $0.4310" in text
    assert paid.arrivals == []


def test_cli_limit_reached_exits_3_with_how_to_resume(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import contextlib

    from typer.testing import CliRunner

    import trustflow.cli.seval as seval_cli
    import trustflow.flows.seval_evaluate as flow_module
    from trustflow.cli.main import app

    seen: dict[str, object] = {}

    def stopped(**kwargs: object) -> dict:
        seen.update(kwargs)
        raise BudgetReached("cost limit $0.5 reached (spent $0.51); run the same command again to resume")

    monkeypatch.setenv("TRUSTFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(flow_module, "seval_evaluate", stopped)
    monkeypatch.setattr(seval_cli, "flow_session", lambda settings: contextlib.nullcontext())
    out = CliRunner().invoke(app, ["seval", "run", "--targets", SPEC, "--cost-limit", "0.5", "--token-limit", "900"])
    assert out.exit_code == 3 and "run the same command again" in out.output
    assert (seen["cost_limit"], seen["token_limit"]) == (0.5, 900)


def test_usage_lines_per_model_and_run_total() -> None:
    from trustflow.tasks.seval.report import usage_lines

    table = pa.Table.from_pylist(
        [
            {"model": "endpoint:a", "prompt_tokens": 10, "completion_tokens": 5, "error": None, "cost_usd": 0.25},
            {"model": "endpoint:a", "prompt_tokens": 10, "completion_tokens": 5, "error": None, "cost_usd": 0.0},
            {"model": "pkg:x", "prompt_tokens": 7, "completion_tokens": 3, "error": "boom", "cost_usd": None},
        ]
    )
    by = usage_by_model(table)
    assert by["endpoint:a"] == {
        "responses": 2,
        "errors": 0,
        "prompt_tokens": 20,
        "completion_tokens": 10,
        "cost_usd": 0.25,
    }
    assert by["pkg:x"]["cost_usd"] is None and by["pkg:x"]["errors"] == 1
    total = {"prompt_tokens": 27, "completion_tokens": 13, "cost_usd": 0.25}
    assert usage_lines({"by_model": by, "total": total}) == [
        "usage endpoint:a: 20 prompt + 10 completion tokens, $0.2500",
        "usage pkg:x: 7 prompt + 3 completion tokens, no prices set",
        "usage run total: 27 prompt + 13 completion tokens, $0.2500",
    ]


def test_usage_summed_part_by_part_equals_the_whole_table() -> None:
    """usage-and-cost sums the responses stage one batch at a time (flat driver memory)."""
    from trustflow.tasks.seval.responses import add_usage

    rows = [
        {"model": f"m{i % 3}", "prompt_tokens": i, "completion_tokens": 2 * i, "error": "x" if i % 7 == 0 else None}
        | {"cost_usd": None if i % 3 == 2 else 0.01 * i}
        for i in range(50)
    ]
    whole = usage_by_model(pa.Table.from_pylist(rows))
    summed: dict = {}
    for start in range(0, 50, 8):
        add_usage(summed, usage_by_model(pa.Table.from_pylist(rows[start : start + 8])))
    assert summed.keys() == whole.keys()
    for model, u in whole.items():
        assert summed[model] | {"cost_usd": None} == u | {"cost_usd": None}
        assert (u["cost_usd"] is None) == (summed[model]["cost_usd"] is None)
        if u["cost_usd"] is not None:
            assert summed[model]["cost_usd"] == pytest.approx(u["cost_usd"])
    assert whole["m2"]["cost_usd"] is None and whole["m0"]["errors"] == 3
