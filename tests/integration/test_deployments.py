"""prefect.yaml against a real Prefect server on 127.0.0.1: every deployment registers, the
schedules give the expected next run times, and a storage event fires the model-card trigger
with the object's key and etag as parameters (the templating the relay's events rely on)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path

import pytest
import yaml

from trustflow.infra.processes import free_port

pytestmark = [pytest.mark.integration]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def prefect_api(tmp_path: Path):
    from trustflow.infra.prefect_server import PrefectServer

    server = PrefectServer(tmp_path / "prefect-server", free_port())
    server.up(timeout_s=120)
    try:
        yield server.api_url
    finally:
        server.down()


def test_deploy_all_schedules_and_event_trigger(prefect_api: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.events import emit_event
    from prefect.events.worker import EventsWorker
    from prefect.server.schemas.schedules import CronSchedule
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from trustflow.infra.prefect_deploy import deploy_all

    declared = {d["name"]: d for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]}
    deploy_all(prefect_api)
    with temporary_settings(updates={PREFECT_API_URL: prefect_api}):
        with get_client(sync_client=True) as client:
            deployments = {d.name: d for d in client.read_deployments()}
            assert set(deployments) == set(declared)
            nightly = deployments["seval-nightly"]
            (schedule,) = nightly.schedules
            assert schedule.schedule.cron == "0 2 * * *" and schedule.active
            start = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)
            nxt = asyncio.run(
                CronSchedule(cron=schedule.schedule.cron, timezone=schedule.schedule.timezone).get_dates(
                    n=2, start=start
                )
            )
            assert [d.isoformat() for d in nxt] == ["2026-11-25T02:00:00+00:00", "2026-11-26T02:00:00+00:00"]
            assert not deployments["detector-evaluate"].schedules[0].active  # off until a dataset is named
            automations = client.read_automations()
            assert any("on-model-card" in a.name for a in automations) and any(
                "on-dataset-landed" in a.name for a in automations
            )

        # a storage event as the relay emits it → a flow run of on-model-card with key and etag
        key, etag = "models/tiny-classifier.yaml", "0123abcd"
        time.sleep(2)  # the trigger service loads new automations on a short cycle
        emit_event(
            event="trustflow.object.created",
            resource={
                "prefect.resource.id": f"s3://bucket/{key}",
                "trustflow.key": key,
                "trustflow.path": key,
                "trustflow.etag": etag,
                "trustflow.bucket": "bucket",
            },
        )
        EventsWorker.drain_all()
        deadline = time.monotonic() + 60
        runs = []
        with get_client(sync_client=True) as client:
            while time.monotonic() < deadline and not runs:
                runs = [r for r in client.read_flow_runs() if r.deployment_id == deployments["on-model-card"].id]
                time.sleep(0.5)
        assert runs, "the model-card trigger did not create a flow run within 60 s"
        assert runs[0].parameters == {"key": key, "etag": etag}

        # a deleted object starts nothing (the triggers expect created events only)
        emit_event(
            event="trustflow.object.deleted",
            resource={
                "prefect.resource.id": f"s3://bucket/{key}",
                "trustflow.key": key,
                "trustflow.path": key,
                "trustflow.etag": etag,
                "trustflow.bucket": "bucket",
            },
        )
        EventsWorker.drain_all()
        time.sleep(8)
        with get_client(sync_client=True) as client:
            after = [r for r in client.read_flow_runs() if r.deployment_id == deployments["on-model-card"].id]
        assert len(after) == 1
