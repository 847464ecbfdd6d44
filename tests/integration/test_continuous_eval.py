"""Continuous evaluation end to end, with every service real and on loopback: SeaweedFS, a
Prefect server with the deployments of prefect.yaml, a process worker and the event relay.
Putting model cards into the bucket produces completed S-Eval and robustness runs and an
updated model leaderboard with no further action; the same card re-uploaded starts nothing.
Hostile cards (paths out of the store, URLs, unconfigured endpoints) fail naming the card and
field, read no file outside the store and send no request to a host not on the allow-list."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
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


@contextlib.contextmanager
def continuous_services(
    tmp_path: Path, s3_settings, seaweedfs, extra_env: dict[str, str] | None = None
) -> Iterator[str]:  # noqa: ANN001
    """A Prefect server with the ``on-model-card`` deployment, a worker and the event relay
    watching ``<prefix>/models/``; yields the API URL; everything is stopped afterwards."""
    from trustflow.infra.prefect_deploy import PrefectWorker, deploy_all
    from trustflow.infra.prefect_server import PrefectServer

    prefix = store_prefix(s3_settings, seaweedfs)
    env = {
        "TRUSTFLOW_HOME": str(tmp_path / "home"),
        "TRUSTFLOW_STORE_URL": s3_settings.store_url,
        "TRUSTFLOW_S3_ENDPOINT_URL": seaweedfs.endpoint_url,
        "TRUSTFLOW_RAY_NUM_CPUS": "2",
        "HF_HUB_OFFLINE": "1",
        **(extra_env or {}),
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
        # the relay starts at "now": wait until it has opened its state and subscribed to the filer
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not list((tmp_path / "relay").glob("*.sqlite")):
            assert relay.poll() is None, (tmp_path / "relay.log").read_text()[-2000:]
            time.sleep(1)
        assert list((tmp_path / "relay").glob("*.sqlite")), "the relay did not start"
        time.sleep(3)
        yield server.api_url
    except BaseException:
        print((tmp_path / "relay.log").read_text()[-2000:] if (tmp_path / "relay.log").exists() else "")
        print(worker.process.log_tail(60))
        raise
    finally:
        if relay is not None:
            relay.terminate()
            try:
                relay.wait(timeout=20)
            except subprocess.TimeoutExpired:
                relay.kill()
        worker.down()
        server.down()


def store_prefix(s3_settings, seaweedfs) -> str:  # noqa: ANN001
    return s3_settings.store_url.removeprefix(f"s3://{seaweedfs.config.bucket}/")


@pytest.fixture()
def tiny_llm_endpoint(tmp_path: Path, tiny_llm: str) -> Iterator[str]:
    """The tiny LLM behind ``trustflow llm serve`` (transformers serve on loopback), configured
    as ``llm_endpoints.tiny``: a card may only reach an LLM that way (or pkg:). Yields the
    ``TRUSTFLOW_LLM_ENDPOINTS`` value."""
    from trustflow.models.llm.serve import LLMServer

    server = LLMServer(tmp_path / "llm-server")
    try:
        status = server.up(tiny_llm, timeout_s=240)
        model = str(status["spec"]).rpartition("#")[2]
        yield json.dumps({"tiny": {"base_url": status["base_url"], "model": model}})
    finally:
        server.down()


@pytest.mark.timeout(1200)
def test_model_cards_in_the_bucket_get_evaluated(
    tmp_path: Path, s3_settings, seaweedfs, tiny_llm_endpoint: str
) -> None:  # noqa: ANN001
    from trustflow.data.store.location import s3_client

    prefix = store_prefix(s3_settings, seaweedfs)
    with continuous_services(
        tmp_path, s3_settings, seaweedfs, {"TRUSTFLOW_LLM_ENDPOINTS": tiny_llm_endpoint}
    ) as api_url:
        s3 = s3_client(s3_settings)
        cards = {
            "models/tiny-cnn.yaml": (
                "name: tiny-cnn\nkind: classifier\nmodel: small_cnn\n"
                "robustness: {dataset: digits, attacks: [clean, fgsm], eps: 0.1, limit: 64}\n"
            ),
            "models/tiny-llm.yaml": (
                "name: tiny-llm\nkind: llm\nmodel: endpoint:tiny\n"
                "seval: {suite: seed-suite, critic: refusal, langs: [en], per_dimension: 1, attacks_per_base: 0, max_tokens: 8}\n"
            ),
        }
        for key, text in cards.items():
            s3.put_object(Bucket=seaweedfs.config.bucket, Key=f"{prefix}/{key}", Body=text.encode())

        store = ArtifactStore(settings=s3_settings)
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline and _leaderboard_keys(store) != set(cards):
            time.sleep(3)
        assert _leaderboard_keys(store) == set(cards), [(r.name, r.state) for r in _flow_runs(api_url, "on-model-card")]
        rows = store.read_table(LEADERBOARD).to_pylist()
        by_metric = {(r["card_key"], r["metric"]): r for r in rows}
        assert 0.0 <= by_metric[("models/tiny-cnn.yaml", "clean")]["value"] <= 1.0
        assert by_metric[("models/tiny-llm.yaml", "safety_score")]["value"] is not None
        assert all(r["etag"] for r in rows)  # the card version evaluated is recorded

        runs = _flow_runs(api_url, "on-model-card")
        assert len(runs) == 2
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(r.state and r.state.is_completed() for r in runs):
            time.sleep(1)
            runs = _flow_runs(api_url, "on-model-card")
        assert all(r.state.is_completed() for r in runs), [r.state for r in runs]

        # the same card again (same bytes, same etag): announced once, so no second run
        s3.put_object(
            Bucket=seaweedfs.config.bucket,
            Key=f"{prefix}/models/tiny-cnn.yaml",
            Body=cards["models/tiny-cnn.yaml"].encode(),
        )
        time.sleep(8)
        assert len(_flow_runs(api_url, "on-model-card")) == 2


class _CountingHandler(http.server.BaseHTTPRequestHandler):
    """Counts every request; a card allowed to reach this host would show up here."""

    hits: list[str] = []

    def _hit(self) -> None:
        type(self).hits.append(f"{self.command} {self.path}")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"data": [{"id": "m"}]}')

    do_GET = do_POST = _hit

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass


@pytest.mark.timeout(600)
def test_hostile_cards_fail_naming_card_and_field(tmp_path: Path, s3_settings, seaweedfs) -> None:  # noqa: ANN001
    """Cards from someone who can write to the bucket: each run fails with the card and field,
    no file outside the store is read (a canary's content appears in no stored object), and
    the host not on the allow-list (a local HTTP server on a free port) gets no request. Four
    cards, one per way out (store traversal, dataset path, model URL, critic URL): each card is a
    worker subprocess (~7 s); the full matrix of hostile fields is tests/unit/test_model_card.py."""
    from trustflow.data.store.location import s3_client

    canary_text = f"CANARY-{uuid.uuid4().hex}"
    canary = tmp_path / "outside" / "canary.pt"
    canary.parent.mkdir()
    canary.write_text(canary_text)
    _CountingHandler.hits = []
    trap = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _CountingHandler)
    threading.Thread(target=trap.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{trap.server_address[1]}/v1"
    up = "../" * (len(canary.parts) + 4)
    hostile = {
        "models/evil-ckpt-traversal.yaml": (
            f"kind: classifier\ncheckpoint: {up}{str(canary).lstrip('/')}\n",
            "checkpoint",
        ),
        "models/evil-dataset.yaml": (
            f"kind: classifier\nmodel: small_cnn\nrobustness: {{dataset: 'npz:{canary}'}}\n",
            "robustness.dataset",
        ),
        "models/evil-openai.yaml": (f"kind: llm\nmodel: 'openai:{url}#m'\n", "model"),
        "models/evil-critic.yaml": (
            f"kind: llm\nmodel: pkg:smollm2-135m\nseval: {{critic: 'llm:openai:{url}#m'}}\n",
            "seval.critic",
        ),
    }
    prefix = store_prefix(s3_settings, seaweedfs)
    bucket = seaweedfs.config.bucket
    s3 = s3_client(s3_settings)
    try:
        with continuous_services(tmp_path, s3_settings, seaweedfs) as api_url:
            for key, (text, _) in hostile.items():
                s3.put_object(Bucket=bucket, Key=f"{prefix}/{key}", Body=f"name: evil\n{text}".encode())
            deadline = time.monotonic() + 300
            runs = []
            while time.monotonic() < deadline:
                runs = _flow_runs(api_url, "on-model-card")
                if len(runs) == len(hostile) and all(r.state and r.state.is_final() for r in runs):
                    break
                time.sleep(2)
            assert len(runs) == len(hostile), [r.name for r in runs]
            for key, (_, field) in hostile.items():
                (run,) = [r for r in runs if r.name.endswith(key)]
                assert run.state.is_failed(), (key, run.state)
                message = run.state.message or ""
                assert f"{key}: field '{field}'" in message, (key, message)
    finally:
        trap.shutdown()
    assert _CountingHandler.hits == []
    for obj in s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/").get("Contents", []):
        body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
        assert canary_text.encode() not in body, obj["Key"]
    store = ArtifactStore(settings=s3_settings)
    assert store.manifest(LEADERBOARD) is None  # nothing was evaluated
