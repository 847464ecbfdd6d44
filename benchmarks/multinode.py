"""S-Eval on one Ray node vs two (issue 22 item 2): the same scripted run, prompts/s and ratio.

Both layouts are real clusters of separate ``ray start`` processes on this machine
(infra/ray_nodes.py: 127.0.0.1, token auth) joined through ``ray_address``, store on a
SeaweedFS started for the run, two ``scripted:`` targets (models/llm/scripted.py: a load
generator, never a result) and the in-process ``refusal`` critic, ``actors=2``:

* ``1 node``: a head with 2 CPUs (both actors on it);
* ``2 nodes``: a head with 1 CPU + a worker node with 1 CPU (one actor on each).

Same CPU count either way: on one machine a second node adds no hardware, only a second
raylet, object store and cross-node traffic, so the ratio measures what spreading over nodes
*costs* (expected ≈ 1.0), not a speed-up; real nodes add their own cores.

usage: benchmarks/multinode.py [--prompts 4000] [--batch-size 8] [--latency-ms 0]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def run_layout(
    label: str, round_: int, cluster: Any, settings_kwargs: dict[str, Any], args: argparse.Namespace
) -> dict[str, Any]:
    import ray
    from scale_seval import synthetic_suite, task_run_seconds  # type: ignore[import-not-found]

    from trustflow import names
    from trustflow.data.schemas import SEVAL_SUITE
    from trustflow.data.store import ArtifactStore, StageRef
    from trustflow.flows.seval_evaluate import seval_evaluate
    from trustflow.infra.prefect_runtime import prefect_runtime
    from trustflow.settings import load_settings

    os.environ.update(cluster.client_env())
    settings = load_settings(**settings_kwargs, ray_address=cluster.address)
    store = ArtifactStore(settings=settings)
    run_id = f"multinode-{label.replace(' ', '')}-{round_}"
    store.write_stage(
        StageRef(names.SEVAL_EVALUATE, run_id, names.SUITE), SEVAL_SUITE, synthetic_suite(args.prompts), ["prompt_uid"]
    )
    lat = f"&latency_ms={args.latency_ms}" if args.latency_ms else ""
    targets = [f"scripted:a?tokens=24&refuse=0.7{lat}", f"scripted:b?tokens=24&refuse=0.4&seed=1{lat}"]
    t0 = time.perf_counter()
    with prefect_runtime(settings):
        state = seval_evaluate(
            targets=targets,
            critic="refusal",
            batch_size=args.batch_size,
            actors=2,
            run_id=run_id,
            cache=False,
            risk_tags=False,
            return_state=True,
        )
        flow_s = time.perf_counter() - t0
        stages = task_run_seconds(state.state_details.flow_run_id)
    ray.shutdown()
    responses_s = sum(s for name, s in stages.items() if name.startswith("responses-"))
    rows = store.require_manifest(StageRef(names.SEVAL_EVALUATE, run_id, names.RESPONSES)).rows
    return {"layout": label, "rows": rows, "flow_s": flow_s, "responses_s": responses_s}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=4000)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2, help="layouts alternate; the best round counts")
    ap.add_argument("--latency-ms", type=float, default=0.0, help="scripted latency per batch (a hosted API's shape)")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="tf-multinode-"))
    os.environ.update(
        {
            "TRUSTFLOW_HOME": str(tmp / "home"),
            "PREFECT_HOME": str(tmp / "prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "ERROR",
            "RAY_USAGE_STATS_ENABLED": "0",
        }
    )
    from trustflow.infra.local_credentials import ensure_local_credentials, ensure_ray_token
    from trustflow.infra.processes import free_port_with_grpc
    from trustflow.infra.ray_nodes import LocalRayCluster, NodeSpec
    from trustflow.infra.seaweedfs import SeaweedFS
    from trustflow.settings import SeaweedFSConfig

    ensure_local_credentials(tmp / "home", create=True)  # S3 keys in the env: every node inherits them
    token = ensure_ray_token(tmp / "home")  # one token for both clusters (Ray keeps the first it loads)
    ports = {name: free_port_with_grpc() for name in ("s3_port", "master_port", "volume_port", "filer_port")}
    seaweed = SeaweedFS(tmp / "seaweedfs", SeaweedFSConfig(bucket="bench", **ports))
    seaweed.up(timeout_s=90)
    layouts = [
        ("1 node", NodeSpec("head", num_cpus=2), []),
        ("2 nodes", NodeSpec("head", num_cpus=1), [NodeSpec("w1", num_cpus=1)]),
    ]
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label, _, _ in layouts}
    try:
        for round_ in range(args.rounds):  # alternating, so warm-up (Prefect's first start) hits both
            for label, head, workers in layouts:
                name = f"{label.replace(' ', '')}-{round_}"
                cluster = LocalRayCluster(root=tmp / name, head=head, workers=list(workers), token_file=token)
                try:
                    cluster.start()
                    kwargs = {"store_url": f"s3://bench/{name}", "s3_endpoint_url": seaweed.endpoint_url}
                    runs[label].append(run_layout(label, round_, cluster, kwargs, args))
                finally:
                    cluster.stop()
    finally:
        seaweed.down()
    results = [
        {**rs[0], "flow_s": min(r["flow_s"] for r in rs), "responses_s": min(r["responses_s"] for r in rs)}
        for rs in runs.values()
    ]

    print(
        f"\nS-Eval scripted, {args.prompts} prompts x 2 targets, actors=2, batch {args.batch_size}, SeaweedFS, "
        f"best of {args.rounds} alternating rounds"
    )
    for label, rs in runs.items():
        print(f"  {label}: flow s per round {[round(r['flow_s'], 1) for r in rs]}")
    print("2 CPUs in total in both layouts (one machine): the ratio is the cost of spreading, not a speed-up\n")
    print("| layout | rows | flow s | responses s | prompts/s (flow) | prompts/s (responses) |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['layout']} | {r['rows']} | {r['flow_s']:.1f} | {r['responses_s']:.1f} | "
            f"{r['rows'] / r['flow_s']:.0f} | {r['rows'] / max(r['responses_s'], 1e-9):.0f} |"
        )
    one, two = results
    print(
        f"\nratio 2 nodes / 1 node: flow {one['flow_s'] / two['flow_s']:.2f}x, "
        f"responses {one['responses_s'] / max(two['responses_s'], 1e-9):.2f}x (prompts/s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
