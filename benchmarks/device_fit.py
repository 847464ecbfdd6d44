#!/usr/bin/env python
"""Device-model fitting on the synthetic lab (issue 20, phase 1: the library, one process).

For a device with known 4 K-model parameters (tasks/device/synthetic.py) it generates Gummel
sweeps at several temperatures and V_sub values and reports, per temperature:

* RMS error of the joint (all V_sub) cryo4k fit in decades of log10 I, over points above 10×
  the noise floor, and how many decades of I_C those points span (goal ≤ 0.05 over ≥ 6);
* recovery of every known parameter (log10 saturation currents in decades, the rest in %;
  goal 5 %), only for parameters the data determines (the tunnelling term is buried under
  diffusion above ~40 K, which its Jacobian uncertainty also says);
* the Gummel–Poon baseline's RMS with the same data, and the ratio (goal ≥ 3 at 4 K, V_sub > 0);
* the largest relative difference between ngspice's sweep of the exported subcircuit and the
  Python model over the fitted range (goal < 1 %);
* fits per second for one (device, T, V_sub) fit at a time in this process;
* with ``--ray-fits N`` (phase 2): N single-curve (device, T, V_sub) fits of synthetic devices
  (parameters varied per device) the way the ``device_fit`` flow runs them — one Ray task per
  (device, T) through ``tasks/device/stages.build_chunk_table`` — on a local Ray with 2 workers
  vs the same chunks one after another in this process: speed-up and fits per second.

This is a benchmark, not a test: it exits 0 unless something breaks.

    .venv/bin/python benchmarks/device_fit.py [--temps 4,10,20,40,77,150,300] [--vsubs 0,2,4,6] [--seed 0]
    .venv/bin/python benchmarks/device_fit.py --ray-fits 500 [--ray-points 40] [--ray-starts 1]   # Ray part only
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from trustflow.models.device.cryo4k import Cryo4K
from trustflow.models.device.spice import ngspice_gummel
from trustflow.tasks.device.fit import FitConfig, Sweeps, fit_sweeps
from trustflow.tasks.device.synthetic import DeviceTruth, LabConfig, gummel_rows

IDENTIFIABLE_TUNNEL = 0.05  # the tunnelling term counts when it carries ≥ 5 % of some fitted I_C


def sweeps(truth: DeviceTruth, lab: LabConfig, t: float, v_subs: list[float]) -> Sweeps:
    rows = [r for r in gummel_rows(truth, lab, [t], v_subs) if max(r["i_c"], r["i_b"]) < 0.995 * lab.compliance_a]
    col = {k: np.array([r[k] for r in rows], dtype=float) for k in ("v_be", "v_sub", "i_c", "i_b")}
    return Sweeps(col["v_be"], col["v_sub"], col["i_c"], col["i_b"], t, lab.noise_floor_a)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--temps", default="4,10,20,40,77,150,300")
    ap.add_argument("--vsubs", default="0,2,4,6")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ray-fits", type=int, default=0, help="run only the Ray part with this many fits")
    ap.add_argument("--ray-points", type=int, default=40, help="V_BE points per sweep in the Ray part")
    ap.add_argument("--ray-starts", type=int, default=1, help="multi-starts per fit in the Ray part")
    ap.add_argument("--ray-workers", type=int, default=2)
    args = ap.parse_args()
    if args.ray_fits:
        ray_part(args.ray_fits, args.ray_points, args.ray_starts, args.ray_workers, args.seed)
        return
    temps = [float(x) for x in args.temps.split(",")]
    v_subs = [float(x) for x in args.vsubs.split(",")]
    truth, lab = DeviceTruth(), LabConfig(seed=args.seed)
    print("T [K] | RMS cryo4k [dec] | I_C decades | RMS Gummel-Poon [dec] | ratio | worst recovery | ngspice max rel")
    worst_all: dict[str, float] = {}
    for t in temps:
        s = sweeps(truth, lab, t, v_subs)
        fit = fit_sweeps(s, FitConfig(model="cryo4k", seed=args.seed))
        gp = fit_sweeps(s, FitConfig(model="gummel_poon", seed=args.seed))
        true = truth.vector(t)
        used = s.i_c > 10 * s.noise_floor_a
        decades = float(np.log10(s.i_c[used].max() / s.i_c[used].min()))
        i_tun = np.exp(true[3] * np.log(10) + s.v_be / true[4])
        tunnel_seen = bool(np.any((i_tun / s.i_c)[used] > IDENTIFIABLE_TUNNEL))
        errs = {}
        for name, value, tv in zip(fit.names, fit.values, true, strict=True):
            if name in ("log10_it", "v_tun") and not tunnel_seen:
                continue
            errs[name] = abs(value - tv) if name.startswith("log10_") else 100 * abs(value / tv - 1)
            worst_all[name] = max(worst_all.get(name, 0.0), errs[name])
        worst = max((e, n) for n, e in errs.items() if not n.startswith("log10_"))
        worst_log = max((e, n) for n, e in errs.items() if n.startswith("log10_"))
        spice_err = 0.0
        for v_sub in v_subs:
            m = s.v_sub == v_sub
            v = np.linspace(s.v_be[m].min(), s.v_be[m].max(), 61)
            ic, ib = ngspice_gummel(Cryo4K, fit.values, t, v, v_sub)
            pc, pb = Cryo4K.currents(fit.values, v, v_sub, t)
            spice_err = max(spice_err, float(np.max(np.abs(ic / pc - 1))), float(np.max(np.abs(ib / pb - 1))))
        print(
            f"{t:5g} | {fit.rms_decades:.4f} | {decades:.1f} | {gp.rms_decades:.3f} | "
            f"{gp.rms_decades / fit.rms_decades:.1f} | {worst[1]} {worst[0]:.2f} %, {worst_log[1]} {worst_log[0]:.3f} dec | "
            f"{spice_err:.1e}"
        )
    print(
        "worst recovery over all T:",
        ", ".join(f"{n} {e:.3g}{' dec' if n.startswith('log10_') else ' %'}" for n, e in worst_all.items()),
    )
    # fits per second: one (device, T, V_sub) fit at a time, like a Ray task would run
    single = [sweeps(truth, lab, t, [v]) for t in (4.0, 77.0, 300.0) for v in v_subs]
    started = time.perf_counter()
    for s in single:
        fit_sweeps(s, FitConfig(model="cryo4k", seed=args.seed))
    took = time.perf_counter() - started
    print(f"single-curve cryo4k fits: {len(single)} in {took:.1f} s = {len(single) / took:.2f} fits/s (one process)")


def ray_chunks(n_fits: int, points: int, starts: int, seed: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(config, chunk) payloads of ``n_fits`` single-curve fits, one chunk per (device, T) with
    4 V_sub curves (0/2/4/6 V) over 5 temperatures, as ``tasks/device/stages.py`` plans them."""
    import tempfile
    from pathlib import Path

    import pyarrow as pa
    import pyarrow.parquet as pq

    from trustflow.data.device.gummel import read_gummel
    from trustflow.tasks.device import stages

    temps, v_subs = [4.0, 20.0, 77.0, 150.0, 300.0], [0.0, 2.0, 4.0, 6.0]
    per_device = len(temps) * len(v_subs)
    rng = np.random.default_rng(seed)
    config = {"dataset": "gummel-bench", "models": ["cryo4k"], "per_curve": True, "starts": starts}
    config |= {"max_nfev": 400, "seed": seed}
    out = []
    for d in range(int(np.ceil(n_fits / per_device))):
        truth = DeviceTruth(
            device_id=f"bench-{d:03d}",
            gamma=float(rng.uniform(0.003, 0.006)),
            n_b=float(rng.uniform(1.1, 1.25)),
            re=float(rng.uniform(100, 400)),
            v_tun=float(rng.uniform(0.03, 0.045)),
        )
        with tempfile.TemporaryDirectory() as tmp:  # through the ingest reader: clipped points flagged
            path = Path(tmp) / f"{truth.device_id}.parquet"
            pq.write_table(
                pa.Table.from_pylist(gummel_rows(truth, LabConfig(points=points, seed=d), temps, v_subs)), path
            )
            table = read_gummel(path).table
        units = [u for u in stages.plan_units(table, config) if u["v_sub"] is not None]
        for c in stages.plan_chunks(table, units, set()):
            out.append((config, c.payload))
    # trim to exactly n_fits units
    left, trimmed = n_fits, []
    for config, chunk in out:
        if left <= 0:
            break
        trimmed.append((config, {**chunk, "units": chunk["units"][:left]}))
        left -= len(trimmed[-1][1]["units"])
    return trimmed


def ray_part(n_fits: int, points: int, starts: int, workers: int, seed: int) -> None:
    """The same chunks on one process and on Ray with ``workers`` CPUs."""
    import ray

    from trustflow.tasks.device.stages import build_chunk_table

    payloads = ray_chunks(n_fits, points, starts, seed)
    n = sum(len(p[1]["units"]) for p in payloads)
    started = time.perf_counter()
    one = [build_chunk_table(p) for p in payloads]
    serial = time.perf_counter() - started
    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    task = ray.remote(num_cpus=1)(build_chunk_table)
    task_warm = ray.get([task.remote(p) for p in payloads[:workers]])  # workers started and imports done
    assert all(t.num_rows for t in task_warm)
    started = time.perf_counter()
    tables = ray.get([task.remote(p) for p in payloads])
    parallel = time.perf_counter() - started
    ray.shutdown()
    same = all(
        a.column("values").to_pylist() == b.column("values").to_pylist() for a, b in zip(one, tables, strict=True)
    )
    rms = [r for t in one for r in t.column("rms_decades").to_pylist()]
    print(
        f"{n} single-curve cryo4k fits ({len(payloads)} (device, T) chunks, {points} points, {starts} start(s)): "
        f"one process {serial:.1f} s = {n / serial:.2f} fits/s; Ray {workers} workers {parallel:.1f} s = "
        f"{n / parallel:.2f} fits/s; speed-up {serial / parallel:.2f}x; same parameters: {same}; "
        f"median RMS {np.median(rms):.4f} dec, worst {max(rms):.4f}"
    )


if __name__ == "__main__":
    main()
