"""S-Eval on a real multi-node Ray cluster (head + worker node, separate ``ray start``
processes on 127.0.0.1, token auth), store on SeaweedFS: the responses actors land on both
nodes, a worker node killed mid-stage fails the run cleanly, and the rerun on a replacement
node resumes with every row exactly once.

Which node wrote a part is observed through the store's test part gate
(``TRUSTFLOW_TEST_PART_GATE``), set in the *worker node's* environment only: each part a
worker-node actor writes leaves ``waiting-<part>`` in the gate folder, parts the head wrote
leave nothing. What the worker node opens is audited (a ``sitecustomize`` on its
``PYTHONPATH`` adds an audit hook): none of its processes opens a file of the driver's
package source tree (code comes from the package ``ensure_ray`` uploads) or of the driver's
trustflow home (data come from chunk payloads and the store). Targets are ``scripted:`` load generators (no model), the critic the
in-process refusal detector, so the run is seconds.

An ingest on the same cluster (``ingest.stage_sources=auto``: joined by address, so staged)
builds a mask folder the worker node's audit also watches: the worker node's tasks read the
staged copy in their node's cache and never the driver's folder.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import trustflow
from trustflow.data.store import ArtifactStore, StageRef
from trustflow.data.store.artifact_store import TEST_GATE_ENV, TEST_GATE_STAGE_ENV
from trustflow.errors import TrustflowError
from trustflow.flows.ingest import ingest_flow
from trustflow.flows.seval_evaluate import seval_evaluate
from trustflow.infra.local_credentials import ensure_ray_token
from trustflow.infra.prefect_runtime import prefect_runtime
from trustflow.infra.ray_nodes import LocalRayCluster, NodeSpec
from trustflow.settings import load_settings
from trustflow.tasks.ingest.kinds import maskfolder
from trustflow.tasks.ingest.staging import CACHE_ENV

# `cluster`: deselected from `make test` (the suite is at its 25-min budget); `make test-cluster` runs it
pytestmark = [pytest.mark.integration, pytest.mark.cluster]

TARGETS = ["scripted:mn-a?tokens=8&refuse=0.5&latency_ms=20", "scripted:mn-b?tokens=8&refuse=0.3&seed=1"]
KWARGS: dict[str, Any] = dict(
    targets=TARGETS,
    critic="refusal",
    suite="seed-suite",
    langs=["zh", "en"],
    per_dimension=2,
    attacks_per_base=10,  # 26 seed prompts x (1 + 10 attacks) = 286 prompts per target
    max_tokens=8,
    batch_size=4,
    actors=2,
    cache=False,
    risk_tags=False,
)


AUDIT_HOOK = """
import os, sys
_watch = tuple(p for p in os.environ.get("TF_AUDIT_WATCH", "").split(os.pathsep) if p)
_log = os.environ.get("TF_AUDIT_LOG")
_busy = []
def _hook(event, args):
    if event != "open" or _busy or not _watch or not _log:
        return
    path = args[0]
    path = os.fsdecode(path) if isinstance(path, (str, bytes, os.PathLike)) else ""
    if os.path.abspath(path).startswith(_watch):
        _busy.append(1)
        try:
            fd = os.open(_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            os.write(fd, (f"{os.getpid()} {path}" + chr(10)).encode())
            os.close(fd)
        finally:
            _busy.pop()
if _watch and _log:
    sys.addaudithook(_hook)
"""


def _audited_env(tmp_path: Path, watch: list[Path]) -> dict[str, str]:
    """Environment for a node whose Python processes log every open of a file under ``watch``."""
    folder = tmp_path / "audit"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(AUDIT_HOOK)
    return {
        "PYTHONPATH": str(folder),  # the node's own path: not the driver's source tree either
        "TF_AUDIT_WATCH": os.pathsep.join(str(p) + os.sep for p in watch),
        "TF_AUDIT_LOG": str(tmp_path / "audit.log"),
    }


def _listeners(pids: list[int]) -> list[str]:
    """Local addresses (IPv4-mapped IPv6 unwrapped) every listening socket of ``pids`` is bound to."""
    import psutil

    found = []
    for pid in pids:
        try:
            conns = psutil.Process(pid).net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        for conn in conns:
            if conn.status == psutil.CONN_LISTEN:
                found.append(conn.laddr.ip.removeprefix("::ffff:"))
    return found


KILL_KWARGS: dict[str, Any] = {**KWARGS, "targets": TARGETS[:1]}  # one target: the node dies during its pass


def _mask_folder(root: Path, per_class: int = 4) -> Path:
    import numpy as np
    from PIL import Image

    for label in ("cup", "key"):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            mask = np.zeros((16, 20), np.uint8)
            mask[2 + i : 12, 4:14] = 255
            Image.fromarray(np.full((16, 20, 3), 40 * i, np.uint8)).save(root / label / f"{i}.png")
            Image.fromarray(mask).save(root / label / f"{i}.mask.png")
    return root


def _shutdown_driver_ray() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


def _check_rows(store: ArtifactStore, run: str, targets: list[str]) -> int:
    suite = store.read_table(StageRef("seval_evaluate", run, "suite"))
    uids = set(suite["prompt_uid"].to_pylist())
    responses = store.read_table(StageRef("seval_evaluate", run, "responses"))
    for target in targets:
        got = [
            u
            for u, m in zip(responses["prompt_uid"].to_pylist(), responses["model"].to_pylist(), strict=True)
            if m == target
        ]
        assert len(got) == len(set(got)) == len(uids) and set(got) == uids, target  # exactly once, none missing
    judgements = store.read_table(StageRef("seval_evaluate", run, "judgements"))
    assert judgements.num_rows == len(uids) * len(targets)
    return len(uids)


def test_seval_on_two_nodes_survives_a_killed_worker_node(s3_settings, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    gate = tmp_path / "gate"
    gate.mkdir()
    (gate / "open").touch()
    source_tree = Path(trustflow.__file__).resolve().parent
    masks = _mask_folder(tmp_path / "masks").resolve()  # an ingestion source only the driver has
    node_cache = tmp_path / "w1-staged"
    # the gate folder is watched too: its files are the hook's positive control
    audit = _audited_env(tmp_path, [source_tree, s3_settings.home_dir.resolve(), gate.resolve(), masks])
    worker_env = {TEST_GATE_ENV: str(gate), TEST_GATE_STAGE_ENV: "responses", CACHE_ENV: str(node_cache), **audit}
    cluster = LocalRayCluster(
        root=tmp_path / "cluster",
        workers=[NodeSpec("w1", env=worker_env)],
        token_file=ensure_ray_token(s3_settings.home_dir),
    )
    _shutdown_driver_ray()  # a local Ray of an earlier test would be reused instead of joining
    started = time.monotonic()
    try:
        cluster.start()
        print(f"TIMING cluster of 2 nodes up in {time.monotonic() - started:.1f} s")
        nodes = cluster.alive_nodes()
        assert sorted(r for n in nodes for r in n["Resources"] if r.startswith("tf_node_")) == [
            "tf_node_head",
            "tf_node_w1",
        ]
        assert {n["NodeManagerAddress"] for n in nodes} == {"127.0.0.1"}
        listening = _listeners([pid for name in ("head", "w1") for pid in cluster.node_pids(name)])
        assert len(listening) >= 6 and all(ipaddress.ip_address(ip).is_loopback for ip in listening), listening
        for key, value in cluster.client_env().items():
            monkeypatch.setenv(key, value)
        # Ray puts the driver's working directory on every worker's sys.path: on one machine a
        # checkout there would shadow the package ensure_ray uploads (on real nodes the path
        # does not exist); the driver runs from elsewhere, as a deployed flow run does
        monkeypatch.chdir(tmp_path)
        settings = load_settings(
            store_url=s3_settings.store_url, s3_endpoint_url=s3_settings.s3_endpoint_url, ray_address=cluster.address
        )
        store = ArtifactStore(settings=settings)

        # 1. a clean run: both nodes answer, every row once
        with prefect_runtime(settings):
            first = seval_evaluate(**KWARGS, run_id="mn-full")
        prompts = _check_rows(store, "mn-full", TARGETS)
        assert prompts == 286 and first["suite"]["rows"] == 286
        parts = {p.name for p in store.require_manifest(StageRef("seval_evaluate", "mn-full", "responses")).parts}
        on_worker = {f.name.removeprefix("waiting-") for f in gate.glob("waiting-*")}
        assert on_worker and on_worker < parts, (len(on_worker), len(parts))  # some parts by each node

        # 1b. an ingest: staged (auto: Ray joined by address), one Ray task per object. The
        # head's only CPU is held meanwhile, so every build runs on the worker node, which
        # must read its own copy of the staged files and never the driver's folder
        import ray

        mark = time.monotonic()
        started_flag = tmp_path / "head-held"
        remote: Any = ray.remote(num_cpus=1, resources={"tf_node_head": 0.01}, max_retries=0)
        # a lambda travels by value (a function of this test module would not import on a node)
        hold = remote(lambda flag, seconds: (Path(flag).write_text("held"), __import__("time").sleep(seconds)))
        hold = hold.remote(str(started_flag), 120)
        deadline = time.monotonic() + 60
        while not started_flag.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started_flag.exists(), "the head's CPU was not taken"
        monkeypatch.setattr(maskfolder, "OBJECTS_PER_PART", 1)
        try:
            with prefect_runtime(settings):
                dataset = ingest_flow(source=str(masks), kind="maskfolder", store_url=settings.store_url)
        finally:
            ray.cancel(hold, force=True)
        assert dataset["tables"] == {"masked_objects": 8}
        sources = store.read_table(StageRef("ingest", dataset["dataset_id"], "masked_objects"))["source"]
        assert sorted(sources.to_pylist()) == sorted(str(p) for p in masks.rglob("[0-9].png"))
        fetched = sorted(p.relative_to(node_cache).as_posix().split("/", 2)[-1] for p in node_cache.rglob("*.png"))
        assert fetched == sorted(p.relative_to(masks).as_posix() for p in masks.rglob("*.png"))
        print(f"TIMING staged ingest on the worker node {time.monotonic() - mark:.1f} s")

        opened = [line.split(" ", 1)[1] for line in Path(audit["TF_AUDIT_LOG"]).read_text().splitlines()]
        assert any(Path(p).parent == gate for p in opened)  # the hook ran in the worker node's actors
        # Code is each node's own installation (a real node has its own venv and trustflow
        # install). On this one machine that is the same venv and, with `pip install -e .`, the
        # same checkout, so the node imports trustflow's modules from it: code files and the
        # install's metadata are not driver-only data. Everything else under the watched roots is.
        installed = Path(sys.prefix).resolve()

        def is_code(path: str) -> bool:
            p = Path(path)
            return p.suffix in (".py", ".pyc") or any(part.endswith(".egg-info") for part in p.parts)

        driver_only = [
            p
            for p in opened
            if Path(p).parent != gate and not Path(p).resolve().is_relative_to(installed) and not is_code(p)
        ]
        assert not driver_only, f"the worker node opened driver-only files: {driver_only[:20]}"
        print(f"TIMING clean run on 2 nodes done {time.monotonic() - started:.1f} s after start")

        # 2. the worker node dies while its actor is writing a part: the run fails in one line
        (gate / "open").unlink()
        for f in gate.glob("waiting-*"):
            f.unlink()

        def kill_when_blocked() -> None:
            deadline = time.monotonic() + 120
            while not list(gate.glob("waiting-*")) and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(1.0)  # the head's actor keeps writing parts meanwhile
            cluster.stop_node("w1", signal.SIGKILL)

        killer = threading.Thread(target=kill_when_blocked, daemon=True)
        killer.start()
        with prefect_runtime(settings), pytest.raises(TrustflowError, match="re-run to resume"):
            seval_evaluate(**KILL_KWARGS, run_id="mn-kill")
        killer.join(timeout=30)
        assert not cluster.node_pids("w1")
        ref = StageRef("seval_evaluate", "mn-kill", "responses")
        assert store.manifest(ref) is None  # nothing committed
        from trustflow.data.schemas import SEVAL_RESPONSES
        from trustflow.tasks.seval.responses import RESPONSE_KEYS

        before = {p.base_name for p in store.writer(ref, SEVAL_RESPONSES, RESPONSE_KEYS).part_files()}
        assert before, "the head node wrote no part before the worker node died"
        blocked = {f.name.removeprefix("waiting-") for f in gate.glob("waiting-*")}
        assert not blocked & before  # the killed node's part never landed

        # 3. a replacement node joins; the rerun resumes: earlier parts kept, the rest written once
        mark = time.monotonic()
        cluster.add_worker(NodeSpec("w2"))
        print(f"TIMING kill phase + replacement node {mark - started:.1f} s / {time.monotonic() - mark:.1f} s")
        with prefect_runtime(settings):
            seval_evaluate(**KILL_KWARGS, run_id="mn-kill")
        _check_rows(store, "mn-kill", KILL_KWARGS["targets"])
        after = {p.name for p in store.require_manifest(ref).parts}
        assert before <= after  # adopted, not rewritten under new names
        print(f"TIMING multinode test {time.monotonic() - started:.1f} s")
    finally:
        _shutdown_driver_ray()
        cluster.stop()
    assert not cluster.node_pids("head") and not cluster.node_pids("w2")
