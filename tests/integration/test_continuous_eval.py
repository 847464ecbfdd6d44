"""Continuous evaluation end to end, with every service real and on loopback: SeaweedFS, a
Prefect server with the deployments of prefect.yaml, a process worker and the event relay.
Putting model cards into the bucket produces completed S-Eval and robustness runs and an
updated model leaderboard with no further action; the same card re-uploaded starts nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trustflow.data.store import ArtifactStore, StageRef
from trustflow.infra.processes import free_port

pytestmark = [pytest.mark.integration]

LEADERBOARD = StageRef("continuous_eval", "models", "leaderboard")


def _flow_runs(api_url: str, deployment: str) -> list:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        dep = client.read_deployment_by_name(f"evaluate_model_card/{deployment}")
        return [r for r in client.read_flow_runs() if r.deployment_id == dep.id]


def _leaderboard_keys(store: ArtifactStore) -> set[str]:
    if store.manifest(LEADERBOARD) is None:
        return set()
    return set(store.read_table(LEADERBOARD, columns=["card_key"])["card_key"].to_pylist())


@pytest.mark.timeout(1200)
def test_model_cards_in_the_bucket_get_evaluated(tmp_path: Path, s3_settings, seaweedfs, tiny_llm: str) -> None:  # noqa: ANN001
    from trustflow.data.store.location import s3_client
    from trustflow.infra.prefect_deploy import PrefectWorker, deploy_all
    from trustflow.infra.prefect_server import PrefectServer

    prefix = s3_settings.store_url.removeprefix(f"s3://{seaweedfs.config.bucket}/")
    env = {
        "TRUSTFLOW_HOME": str(tmp_path / "home"),
        "TRUSTFLOW_STORE_URL": s3_settings.store_url,
        "TRUSTFLOW_S3_ENDPOINT_URL": seaweedfs.endpoint_url,
        "TRUSTFLOW_RAY_NUM_CPUS": "2",
        "HF_HUB_OFFLINE": "1",
    }
    server = PrefectServer(tmp_path / "prefect-server", free_port())
    worker = PrefectWorker(tmp_path / "prefect-worker", server.api_url, limit=1)
    relay = None
    try:
        server.up(timeout_s=120)
        deploy_all(server.api_url, ["on-model-card"])
        worker.up(extra_env=env)
        relay_env = dict(os.environ, **env, PREFECT_API_URL=server.api_url)
        with open(tmp_path / "relay.log", "wb") as relay_log:  # the relay keeps its own copy of the fd
            relay = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "trustflow.cli.main",
                    "events",
                    "relay",
                    "--source",
                    "seaweedfs",
                    "--bucket",
                    seaweedfs.config.bucket,
                    "--prefix",
                    f"{prefix}/models/",
                    "--filer",
                    f"127.0.0.1:{seaweedfs.config.filer_port}",
                    "--state-dir",
                    str(tmp_path / "relay"),
                    "--api-url",
                    server.api_url,
                    "--start",
                    "now",
                ],
                env=relay_env,
                stdout=subprocess.DEVNULL,
                stderr=relay_log,
                start_new_session=True,
            )
        time.sleep(3)  # the relay subscribes to the filer

        s3 = s3_client(s3_settings)
        cards = {
            "models/tiny-cnn.yaml": (
                "name: tiny-cnn\nkind: classifier\nmodel: small_cnn\n"
                "robustness: {dataset: digits, attacks: [clean, fgsm], eps: 0.1, limit: 64}\n"
            ),
            "models/tiny-llm.yaml": (
                f"name: tiny-llm\nkind: llm\nmodel: '{tiny_llm}'\n"
                "seval: {suite: seed-suite, critic: refusal, langs: [en], per_dimension: 1, attacks_per_base: 0, max_tokens: 8}\n"
            ),
        }
        for key, text in cards.items():
            s3.put_object(Bucket=seaweedfs.config.bucket, Key=f"{prefix}/{key}", Body=text.encode())

        store = ArtifactStore(settings=s3_settings)
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline and _leaderboard_keys(store) != set(cards):
            time.sleep(3)
        assert _leaderboard_keys(store) == set(cards), (tmp_path / "relay.log").read_text()[
            -2000:
        ] + worker.process.log_tail(40)
        rows = store.read_table(LEADERBOARD).to_pylist()
        by_metric = {(r["card_key"], r["metric"]): r for r in rows}
        assert 0.0 <= by_metric[("models/tiny-cnn.yaml", "clean")]["value"] <= 1.0
        assert by_metric[("models/tiny-llm.yaml", "safety_score")]["value"] is not None
        assert all(r["etag"] for r in rows)  # the card version evaluated is recorded

        runs = _flow_runs(server.api_url, "on-model-card")
        assert len(runs) == 2
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(r.state and r.state.is_completed() for r in runs):
            time.sleep(1)
            runs = _flow_runs(server.api_url, "on-model-card")
        assert all(r.state.is_completed() for r in runs), [r.state for r in runs]

        # the same card again (same bytes, same etag): announced once, so no second run
        s3.put_object(
            Bucket=seaweedfs.config.bucket,
            Key=f"{prefix}/models/tiny-cnn.yaml",
            Body=cards["models/tiny-cnn.yaml"].encode(),
        )
        time.sleep(8)
        assert len(_flow_runs(server.api_url, "on-model-card")) == 2
    finally:
        if relay is not None:
            relay.terminate()
            try:
                relay.wait(timeout=20)
            except subprocess.TimeoutExpired:
                relay.kill()
        worker.down()
        server.down()
