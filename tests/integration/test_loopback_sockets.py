"""Every service trustflow starts listens on loopback only.

Starts, the way users start them, each service the project runs: SeaweedFS (the session's,
started by ``SeaweedFS.up``), a Prefect server and its process worker, a local Ray
(``ensure_ray`` in a driver process of its own, with one worker started), the storage-event
relay (``trustflow events relay``, which runs ``weed filer.meta.tail``) and ``trustflow llm
serve`` (the tiny random LLM). Then every TCP socket in LISTEN state owned by those processes
or any of their descendants must be bound to a loopback address (127.0.0.0/8, ::1, or
::ffff:127.x on a dual-stack socket). Loopback alone still admits every local user, so the
local Ray's GCS must also refuse calls without its token, and SeaweedFS must serve the bucket
only through S3 with credentials (not through the filer's or master's HTTP APIs). Only what
this module started is stopped.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from trustflow.infra.processes import free_port

pytestmark = pytest.mark.integration

LLM_CLI = "import sys; from trustflow.cli.llm import llm_app; sys.argv[0] = 'trustflow llm'; llm_app()"
RELAY = [sys.executable, "-c", "from trustflow.cli.events import events_app; events_app()", "relay"]
RAY_DRIVER = textwrap.dedent(
    """
    import os, sys
    from trustflow.infra.ray_runtime import ensure_ray, shutdown_ray
    from trustflow.settings import load_settings
    import ray

    ensure_ray(load_settings(ray_num_cpus=1))
    ray.get(ray.remote(lambda: os.getpid()).remote())  # a worker process, with its own server
    print("READY", ray.get_runtime_context().gcs_address, os.environ.get("RAY_AUTH_TOKEN_PATH", "-"), flush=True)
    sys.stdin.read()  # until the test closes stdin
    shutdown_ray()
    """
)


@dataclass(frozen=True)
class Listener:
    service: str
    pid: int
    process: str
    ip: str
    port: int

    def __str__(self) -> str:
        return f"{self.service}: pid {self.pid} ({self.process}) listens on {self.ip}:{self.port}"


def is_loopback(ip: str) -> bool:
    """127.0.0.0/8 and ::1; an IPv4-mapped address (dual-stack socket) counts as its IPv4."""
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


def listeners(service: str, root_pid: int) -> list[Listener]:
    """LISTEN sockets of ``root_pid`` and all its descendants (processes gone meanwhile are skipped)."""
    root = psutil.Process(root_pid)
    found = set()
    for proc in [root, *root.children(recursive=True)]:
        try:
            name = proc.name()
            conns = proc.net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        for conn in conns:
            if conn.status == psutil.CONN_LISTEN:
                found.add(Listener(service, proc.pid, name, conn.laddr.ip, conn.laddr.port))
    return sorted(found, key=lambda item: (item.service, item.pid, item.port))


def wait_for(what: str, check: Callable[[], Any], timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:.0f}s: {what}")
        time.sleep(0.2)
    return result


def test_listener_check_flags_a_wildcard_socket() -> None:
    """The checker itself: a child bound to 0.0.0.0 is reported, one on 127.0.0.1 is not."""
    code = textwrap.dedent(
        """
        import socket, sys, time
        held = []
        for ip in sys.argv[1:]:
            held.append(socket.socket())
            held[-1].bind((ip, 0))
            held[-1].listen()
        print("up", flush=True)
        time.sleep(30)
        """
    )
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import subprocess,sys; subprocess.run([sys.executable,'-c',{code!r},'0.0.0.0','127.0.0.1'])",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None and parent.stdout.readline().strip() == "up"
        found = listeners("probe", parent.pid)
        assert len(found) == 2 and all(item.pid != parent.pid for item in found), found
        assert [item.ip for item in found if not is_loopback(item.ip)] == ["0.0.0.0"]
    finally:
        for child in psutil.Process(parent.pid).children(recursive=True):
            child.kill()
        parent.kill()
        parent.wait()
    assert is_loopback("::1") and is_loopback("::ffff:127.0.0.1") and not is_loopback("::")


@contextmanager
def prefect_with_worker(state: Path) -> Iterator[dict[str, int]]:
    from trustflow.infra.prefect_deploy import PrefectWorker
    from trustflow.infra.prefect_server import PrefectServer

    server = PrefectServer(state / "server", free_port())
    worker = PrefectWorker(state / "worker", server.api_url)
    try:
        server.up(timeout_s=150)
        worker.up()
        yield {
            "prefect-server": int(server.process.running_pid() or 0),
            "prefect-worker": int(worker.process.running_pid() or 0),
            "api_port": server.port,
        }
    finally:
        worker.down()
        server.down()


@dataclass(frozen=True)
class RayDriver:
    pid: int
    gcs_address: str
    token_path: Path | None  # the token file the driver's Ray uses (None: no token file)


@contextmanager
def local_ray(home: Path) -> Iterator[RayDriver]:
    """A driver process running ``ensure_ray``; Ray's processes are its descendants."""
    env = dict(os.environ, TRUSTFLOW_HOME=str(home))
    driver = subprocess.Popen(
        [sys.executable, "-c", RAY_DRIVER],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert driver.stdout is not None
        seen = []
        while (line := driver.stdout.readline()) and not line.startswith("READY "):
            seen.append(line)  # anything a library printed first
        if not line:
            driver.kill()
            raise AssertionError(f"local Ray did not start: {''.join(seen)}{driver.communicate(timeout=30)[1][-3000:]}")
        _, gcs_address, token_path = line.split()
        yield RayDriver(driver.pid, gcs_address, None if token_path == "-" else Path(token_path))
    finally:
        if driver.poll() is None:
            try:
                driver.communicate(input="", timeout=60)  # EOF: the driver shuts Ray down and exits
            except subprocess.TimeoutExpired:
                driver.kill()
                driver.communicate()


@contextmanager
def llm_server(home: Path, spec: str) -> Iterator[int]:
    from trustflow.models.llm.serve import LLMServer

    env = dict(os.environ, TRUSTFLOW_HOME=str(home), HF_HUB_OFFLINE="1")
    state = LLMServer(home / "llm-server")
    try:
        up = subprocess.run(
            [sys.executable, "-c", LLM_CLI, "serve", spec, "--port", str(free_port())],
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert up.returncode == 0, up.stderr[-3000:] + up.stdout[-2000:]
        yield int(state.process.running_pid() or 0)
    finally:
        state.down()  # only our own pid file is used


@contextmanager
def event_relay(seaweedfs: Any, api_url: str, home: Path) -> Iterator[int]:
    env = dict(
        os.environ,
        TRUSTFLOW_HOME=str(home),
        TRUSTFLOW_STORE_URL=f"s3://{seaweedfs.config.bucket}",
        TRUSTFLOW_S3_ENDPOINT_URL=seaweedfs.endpoint_url,
        TRUSTFLOW_SEAWEEDFS__FILER_PORT=str(seaweedfs.config.filer_port),
        TRUSTFLOW_SEAWEEDFS__BUCKET=seaweedfs.config.bucket,
        PREFECT_API_URL=api_url,
    )
    args = [*RELAY, "--source", "seaweedfs", "--start", "now", "--state-dir", str(home / "relay-state")]
    relay = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        proc = psutil.Process(relay.pid)

        def tailing() -> bool:
            if relay.poll() is not None:
                raise AssertionError(f"the relay exited: {relay.communicate()[1][-3000:]}")
            return any(child.name() == "weed" for child in proc.children(recursive=True))

        wait_for("the relay follows the filer (weed filer.meta.tail)", tailing, 90)
        yield relay.pid
    finally:
        if relay.poll() is None:
            relay.send_signal(signal.SIGTERM)
            try:
                relay.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                relay.kill()
                relay.communicate()


@dataclass
class Services:
    roots: dict[str, int]  # service -> pid of the process we started (its descendants belong to it)
    ray: RayDriver
    found: list[Listener]


@pytest.fixture(scope="module")
def services(seaweedfs: Any, tiny_llm: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """All services up at once (slow starts in parallel); the listening sockets seen then."""
    tmp = tmp_path_factory.mktemp("loopback")
    t0 = time.perf_counter()
    with ExitStack() as stack:
        with ThreadPoolExecutor(max_workers=3) as pool:
            # each context is entered in its thread and exited by the stack, here
            prefect_f = pool.submit(stack.enter_context, prefect_with_worker(tmp / "prefect"))
            ray_f = pool.submit(stack.enter_context, local_ray(tmp / "ray-home"))
            llm_f = pool.submit(stack.enter_context, llm_server(tmp / "llm-home", tiny_llm))
            prefect, ray, llm_pid = prefect_f.result(), ray_f.result(), llm_f.result()
        api_url = f"http://127.0.0.1:{prefect['api_port']}/api"
        roots = {
            "seaweedfs": int(seaweedfs.process.running_pid() or 0),
            "prefect-server": prefect["prefect-server"],
            "prefect-worker": prefect["prefect-worker"],
            "event-relay": stack.enter_context(event_relay(seaweedfs, api_url, tmp / "relay-home")),
            "ray": ray.pid,
            "llm-server": llm_pid,
        }
        started = time.perf_counter() - t0
        assert all(roots.values()), f"a service is not running: {roots}"
        found = [item for service, pid in roots.items() for item in listeners(service, pid)]
        for service, pid in roots.items():
            assert psutil.Process(pid).is_running(), f"{service} (pid {pid}) exited before the check"
        print(f"\n[sockets] services started in {started:.1f}s; {len(found)} listening sockets:")
        for item in found:
            print(f"  {item}")
        yield Services(roots, ray, found)


def test_every_service_listens_on_loopback_only(services: Services) -> None:
    # a service with no listener at all would make the check vacuous for it
    for service in ("seaweedfs", "prefect-server", "ray", "llm-server"):
        assert any(item.service == service for item in services.found), f"{service}: no listening socket found"
    exposed = [str(item) for item in services.found if not is_loopback(item.ip)]
    assert not exposed, "listening beyond loopback:\n" + "\n".join(exposed)


def test_local_ray_refuses_calls_without_its_token(services: Services) -> None:
    """Loopback still lets every local user and process in: the GCS must want the token."""
    import grpc
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    request = gcs_service_pb2.GetClusterIdRequest()
    with grpc.insecure_channel(services.ray.gcs_address) as channel:
        stub = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel)
        try:
            stub.GetClusterId(request, timeout=10)
            raise AssertionError(f"the local Ray's GCS at {services.ray.gcs_address} answered a call without a token")
        except grpc.RpcError as refused:
            assert refused.code() == grpc.StatusCode.UNAUTHENTICATED, refused
        token_path = services.ray.token_path
        assert token_path is not None, "the local Ray names no token file (RAY_AUTH_TOKEN_PATH)"
        assert token_path.stat().st_mode & 0o077 == 0, f"{token_path}: the token file must be private"
        token = token_path.read_text().strip()
        with pytest.raises(grpc.RpcError) as wrong:
            stub.GetClusterId(request, timeout=10, metadata=[("authorization", "Bearer " + "0" * 64)])
        assert wrong.value.code() == grpc.StatusCode.UNAUTHENTICATED
        reply = stub.GetClusterId(request, timeout=10, metadata=[("authorization", f"Bearer {token}")])
        assert reply.cluster_id


def http(request: urllib.request.Request) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_seaweedfs_serves_the_bucket_only_through_authenticated_s3(seaweedfs: Any) -> None:
    from trustflow.data.store.location import s3_client
    from trustflow.settings import load_settings

    s3 = s3_client(load_settings(s3_endpoint_url=seaweedfs.endpoint_url))
    bucket, c = seaweedfs.config.bucket, seaweedfs.config
    prefix = f"exposure-{uuid.uuid4().hex[:8]}"
    secret = b"only for credentialed clients " + uuid.uuid4().hex.encode()
    s3.put_object(Bucket=bucket, Key=f"{prefix}/secret.txt", Body=secret)
    filer, master = f"http://127.0.0.1:{c.filer_port}", f"http://127.0.0.1:{c.master_port}"
    probes = {
        "filer GET": urllib.request.Request(f"{filer}/buckets/{bucket}/{prefix}/secret.txt"),
        "filer listing": urllib.request.Request(
            f"{filer}/buckets/{bucket}/{prefix}/", headers={"Accept": "application/json"}
        ),
        "filer PUT": urllib.request.Request(f"{filer}/buckets/{bucket}/{prefix}/planted.txt", data=b"x", method="PUT"),
        "master file-id assignment": urllib.request.Request(f"{master}/dir/assign"),
        "anonymous S3 GET": urllib.request.Request(f"{seaweedfs.endpoint_url}/{bucket}/{prefix}/secret.txt"),
    }
    answered = {}
    for name, request in probes.items():
        status, body = http(request)
        if status < 400 or secret in body:
            answered[name] = f"{status} {body[:100]!r}"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
    if keys != [f"{prefix}/secret.txt"]:
        answered["bucket after the probes"] = f"written without credentials: {keys}"
    assert not answered, "SeaweedFS answered without credentials:\n" + "\n".join(
        f"  {k}: {v}" for k, v in answered.items()
    )
