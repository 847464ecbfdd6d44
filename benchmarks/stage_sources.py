"""What staging an ingestion source costs (issue 22 item 2; tasks/ingest/staging.py).

On a SeaweedFS started for the run: an image folder of ``--images`` small PNGs in
``--classes`` class folders (and the S-Eval sample when ``../shared`` has it) is

* staged (uploaded to ``staging/<fingerprint>/``): seconds, objects/s, MB/s; then staged
  again (the rerun finds the manifest: 0 objects);
* ingested as ``imagefolder`` on a local Ray, unstaged (``never``) and staged (``always``,
  the upload included, each into its own store prefix so neither is a no-op): the flow's
  seconds and the ratio, i.e. what a cluster pays for workers that cannot see the driver's disk.

usage: benchmarks/stage_sources.py [--images 2000] [--classes 10] [--size 32]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEVAL = HERE.parent.parent / "shared" / "data" / "s-eval" / "small"


def make_folder(root: Path, images: int, classes: int, size: int) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(images):
        folder = root / f"class{i % classes:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(folder / f"{i:06d}.png")
    return root


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--size", type=int, default=32, help="PNG side in pixels")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="tf-stage-"))
    os.environ.update(
        {
            "TRUSTFLOW_HOME": str(tmp / "home"),
            "TRUSTFLOW_STAGED_CACHE": str(tmp / "node-cache"),
            "PREFECT_HOME": str(tmp / "prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "ERROR",
            "RAY_USAGE_STATS_ENABLED": "0",
        }
    )
    from trustflow.data.sources import fingerprint, source_files
    from trustflow.data.store import ArtifactStore
    from trustflow.flows.ingest import ingest_flow
    from trustflow.infra.local_credentials import ensure_local_credentials
    from trustflow.infra.prefect_runtime import prefect_runtime
    from trustflow.infra.processes import free_port_with_grpc
    from trustflow.infra.ray_runtime import ensure_ray, shutdown_ray
    from trustflow.infra.seaweedfs import SeaweedFS
    from trustflow.settings import SeaweedFSConfig, StageSources, load_settings
    from trustflow.tasks.ingest.staging import stage_source

    ensure_local_credentials(tmp / "home", create=True)
    ports = {name: free_port_with_grpc() for name in ("s3_port", "master_port", "volume_port", "filer_port")}
    seaweed = SeaweedFS(tmp / "seaweedfs", SeaweedFSConfig(bucket="bench", **ports))
    seaweed.up(timeout_s=90)
    folder = make_folder(tmp / "images", args.images, args.classes, args.size)
    sources = [("image folder", folder)] + ([("S-Eval sample", SEVAL)] if SEVAL.is_dir() else [])
    rows = []
    try:
        for label, src in sources:
            settings = load_settings(store_url=f"s3://bench/stage-{len(rows)}", s3_endpoint_url=seaweed.endpoint_url)
            store = ArtifactStore(settings=settings)
            fp = fingerprint(src)
            size = sum(f.stat().st_size for _, f in source_files(src))
            t0 = time.perf_counter()
            _, first = stage_source(store, src, fp)
            t1 = time.perf_counter()
            _, again = stage_source(store, src, fp)
            t2 = time.perf_counter()
            rows.append((label, first["files"], size, t1 - t0, again["uploaded"], t2 - t1))

        ensure_ray(load_settings(ray_num_cpus=2))
        flows: dict[str, float] = {}
        for mode in ("never", "always", "never", "always"):  # alternating: warm-up hits both
            settings = load_settings(
                store_url=f"s3://bench/ingest-{mode}-{len(flows)}-{time.monotonic_ns()}",
                s3_endpoint_url=seaweed.endpoint_url,
            )
            shutil.rmtree(tmp / "node-cache", ignore_errors=True)
            staged: StageSources = "always" if mode == "always" else "never"
            t0 = time.perf_counter()
            with prefect_runtime(settings):
                info = ingest_flow(
                    source=str(folder), kind="imagefolder", store_url=settings.effective_store_url, stage_sources=staged
                )
            took = time.perf_counter() - t0
            assert info["tables"] == {"images": args.images} and not info["skipped"]
            flows[mode] = min(flows.get(mode, took), took)
        shutdown_ray()
    finally:
        seaweed.down()
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nstaging into SeaweedFS (one machine, 8 uploads in flight), {args.images} PNGs of {args.size}x{args.size}")
    print("| source | files | MB | stage s | files/s | MB/s | rerun: uploaded | rerun s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, files, size, took, again, rerun in rows:
        mb = size / 1e6
        print(
            f"| {label} | {files} | {mb:.1f} | {took:.2f} | {files / took:.0f} | {mb / took:.1f} | {again} | {rerun:.2f} |"
        )
    print(f"\nimagefolder ingest of {args.images} images on a local Ray (2 CPUs), best of 2 alternating runs")
    print("| stage_sources | flow s |")
    print("|---|---:|")
    for mode in ("never", "always"):
        print(f"| {mode} | {flows[mode]:.1f} |")
    print(f"staged / unstaged: {flows['always'] / flows['never']:.2f}x (upload + per-node fetch included)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
