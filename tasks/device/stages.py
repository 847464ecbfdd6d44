"""Prefect tasks of the ``device_fit`` flow (issue 20, phase 2); each does one step through the
store, under ``runs/device_fit/<run_id>/``.

- ``check_config`` checks models and numbers in the driver (one ``ConfigError`` naming the
  option, before Prefect tasks or Ray start).
- ``fits_task`` reads the ingested ``gummel`` table, plans the fit units — per (device, T) one
  joint fit across every V_sub curve and, with ``per_curve``, one fit per V_sub curve, each for
  every model — and runs the units the ``fits`` stage (schema ``device_fits``, key
  ``device|T|v_sub or joint|model``) lacks: one Ray task per (device, T), one Parquet part
  each. A rerun finds every key and starts no Ray task; a lost part reruns only its
  (device, T).
- ``plots_task``: Gummel, β and residual PNGs from the stored fits and measurements;
  ``publish_summary``: the Prefect table (one row per joint fit and parameter) and markdown.

The run id digests the dataset and the fit settings (not ``parallel``), so the same request is
the same run and resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from trustflow import names
from trustflow.data.schemas import DEVICE_FITS, GUMMEL
from trustflow.data.store import ArtifactStore, StageRef
from trustflow.errors import ConfigError
from trustflow.tasks.ray_parts import Chunk, StoreSpec

FLOW = names.DEVICE_FIT
KEY = ["row_key"]
GUMMEL_PNG = "gummel.png"
BETA_PNG = "beta.png"
RESIDUALS_PNG = "residuals.png"
JOINT = "joint"


def digest(payload: Any) -> str:
    """12 hex digits of a JSON payload: same parameters → same run id."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]


def row_key(device_id: str, temperature_k: float, v_sub: float | None, model: str) -> str:
    return f"{device_id}|{temperature_k:g}|{JOINT if v_sub is None else format(v_sub, 'g')}|{model}"


def check_config(config: Mapping[str, Any]) -> None:
    """Models, dataset id and numbers of a run: one ``ConfigError`` naming the option."""
    from trustflow.models.device.base import COMPACT_MODELS

    if not str(config["dataset"]).startswith(f"{names.GUMMEL}-"):
        raise ConfigError(f"dataset {config['dataset']!r}: not a gummel dataset id (gummel-…; see `trustflow ingest`)")
    if not config["models"]:
        raise ConfigError("--models: give at least one")
    for m in config["models"]:
        if m not in COMPACT_MODELS:
            raise ConfigError(f"--models: unknown compact model {m!r}; known: {', '.join(COMPACT_MODELS)}")
    if config["starts"] < 1:
        raise ConfigError(f"--starts: must be >= 1, got {config['starts']}")
    if config["max_nfev"] < 10:
        raise ConfigError(f"--max-nfev: must be >= 10, got {config['max_nfev']}")


def run_id_of(config: Mapping[str, Any]) -> str:
    return f"device-{digest(dict(config))}"


def gummel_ref(dataset: str) -> StageRef:
    return StageRef(names.INGEST, dataset, names.GUMMEL)


def read_measurements(store: ArtifactStore, dataset: str) -> pa.Table:
    """The dataset's ``gummel`` table, or one ``ConfigError`` saying it is not in the store."""
    ref = gummel_ref(dataset)
    manifest = store.manifest(ref)
    if manifest is None or manifest.schema_name != GUMMEL.name:
        raise ConfigError(f"dataset {dataset!r}: no gummel table in {store.url} (ingest it with --kind gummel)")
    return store.read_table(ref)


def plan_units(table: pa.Table, config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every fit unit, ordered device → T → (joint, then each V_sub) → model."""
    groups: dict[tuple[str, float], set[float]] = {}
    for d, t, v in zip(
        table.column("device_id").to_pylist(),
        table.column("temperature_k").to_pylist(),
        table.column("v_sub").to_pylist(),
        strict=True,
    ):
        groups.setdefault((str(d), float(t)), set()).add(float(v))
    units = []
    for (device, t), vs in sorted(groups.items()):
        curves: list[float | None] = [None]
        if config["per_curve"] and len(vs) > 1:
            curves += sorted(vs)
        for v in curves:
            for m in dict.fromkeys(config["models"]):
                units.append({"device_id": device, "temperature_k": t, "v_sub": v, "model": m})
    return units


def _points(table: pa.Table, device: str, t: float) -> dict[str, np.ndarray]:
    """The columns a (device, T) chunk needs, clipped points included (they are counted)."""
    sel = table.filter(pc.and_(pc.equal(table["device_id"], device), pc.equal(table["temperature_k"], t)))
    floors = sel.column("noise_floor_a").to_numpy(zero_copy_only=False).astype(float)
    return {
        "v_be": sel.column("v_be").to_numpy(),
        "v_sub": sel.column("v_sub").to_numpy(),
        "i_c": sel.column("i_c").to_numpy(),
        "i_b": sel.column("i_b").to_numpy(),
        "clipped": sel.column("clipped").to_numpy(zero_copy_only=False).astype(bool),
        "noise_floor_a": np.nan_to_num(floors, nan=0.0),
    }


def plan_chunks(table: pa.Table, units: Sequence[Mapping[str, Any]], done: set[str]) -> list[Chunk]:
    """One chunk (Ray task, Parquet part) per (device, T) with its units the stage lacks; the
    part id digests the chunk's keys, so a rerun of the same units rewrites the same part."""
    todo: dict[tuple[str, float], list[Mapping[str, Any]]] = {}
    for u in units:
        if row_key(u["device_id"], u["temperature_k"], u["v_sub"], u["model"]) not in done:
            todo.setdefault((u["device_id"], u["temperature_k"]), []).append(u)
    chunks = []
    for (device, t), us in todo.items():
        keys = [row_key(u["device_id"], u["temperature_k"], u["v_sub"], u["model"]) for u in us]
        part = f"fits-{hashlib.sha256('|'.join(keys).encode()).hexdigest()[:12]}"
        chunks.append(Chunk(part, {"units": [dict(u) for u in us], "points": _points(table, device, t)}))
    return chunks


def fit_row(config: Mapping[str, Any], unit: Mapping[str, Any], points: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """One fit of one unit, as a ``device_fits`` row."""
    from trustflow.models.device.base import COMPACT_MODELS
    from trustflow.tasks.device.fit import FLOOR_MARGIN, RMS_MARGIN, FitConfig, Sweeps, fit_sweeps

    sel = np.ones(len(points["v_be"]), dtype=bool) if unit["v_sub"] is None else points["v_sub"] == unit["v_sub"]
    kept = sel & ~points["clipped"]
    floors = points["noise_floor_a"][sel]
    floor = float(floors.max()) if floors.size and floors.max() > 0 else 1e-13
    s = Sweeps(
        points["v_be"][kept],
        points["v_sub"][kept],
        points["i_c"][kept],
        points["i_b"][kept],
        unit["temperature_k"],
        floor,
    )
    cfg = FitConfig(model=unit["model"], starts=config["starts"], max_nfev=config["max_nfev"], seed=config["seed"])
    r = fit_sweeps(s, cfg)
    used = int((s.i_c > FLOOR_MARGIN * floor).sum() + (s.i_b > FLOOR_MARGIN * floor).sum())
    shown = s.i_c[s.i_c > RMS_MARGIN * floor]
    model = COMPACT_MODELS.get(unit["model"])
    return {
        "row_key": row_key(unit["device_id"], unit["temperature_k"], unit["v_sub"], unit["model"]),
        "device_id": unit["device_id"],
        "temperature_k": float(unit["temperature_k"]),
        "v_sub": unit["v_sub"],
        "v_subs": r.v_subs,
        "model": unit["model"],
        "param_names": r.names,
        "units": [p.unit for p in model.params],
        "values": [float(v) for v in r.values],
        "stderr": [float(v) for v in r.stderr],
        "free": [n in r.free for n in r.names],
        "rms_decades": r.rms_decades,
        "rms_decades_ic": r.rms_decades_ic,
        "ic_decades": float(np.log10(shown.max() / shown.min())) if shown.size > 1 else 0.0,
        "n_points": used,
        "n_excluded": 2 * int(sel.sum()) - used,
        "n_clipped": int((sel & points["clipped"]).sum()),
        "cost": r.cost,
        "seconds": r.seconds,
    }


def build_chunk_table(payload: tuple[dict[str, Any], dict[str, Any]]) -> pa.Table:
    """A chunk's rows (runs in a Ray worker): every unit of one (device, T)."""
    config, chunk = payload
    rows = [fit_row(config, u, chunk["points"]) for u in chunk["units"]]
    return pa.Table.from_pylist(rows, DEVICE_FITS.schema)


@task(name="device-fits", cache_policy=NO_CACHE)
def fits_task(spec: StoreSpec, run_id: str, config: dict[str, Any], parallel: bool = True) -> dict[str, Any]:
    """Every unit the fits stage lacks, one Ray task (and one part) per (device, T); then the commit."""
    from trustflow.infra.ray_runtime import ensure_ray
    from trustflow.tasks.ray_parts import write_parts_on_ray

    store = spec.open()
    table = read_measurements(store, config["dataset"])
    units = plan_units(table, config)
    ref = StageRef(FLOW, run_id, names.FITS)
    writer = store.writer(ref, DEVICE_FITS, KEY)
    done = {str(k) for k in writer.existing_keys().column("row_key").to_pylist()}
    chunks = [Chunk(c.part_id, (config, c.payload)) for c in plan_chunks(table, units, done)]
    todo = sum(len(c.payload[1]["units"]) for c in chunks)
    stats = {"chunks": len(chunks), "units": len(units), "units_done_before": len(units) - todo, "rows_written": 0}
    if chunks and parallel:  # a finished run does not even start Ray
        ensure_ray(store.settings)
        stats["rows_written"] = write_parts_on_ray(store, ref, DEVICE_FITS, KEY, chunks, build_chunk_table)[
            "rows_written"
        ]
    else:
        for c in chunks:
            part = writer.missing(build_chunk_table(c.payload))
            if part.num_rows:
                writer.write_part(part, c.part_id)
            stats["rows_written"] += part.num_rows
    store.writer(ref, DEVICE_FITS, KEY).commit({"config": config, "dataset": config["dataset"]})
    return {"fits": str(ref), **stats}


def order(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows by device, T, joint first then V_sub, model."""
    return sorted(
        (dict(r) for r in rows),
        key=lambda r: (
            r["device_id"],
            r["temperature_k"],
            r["v_sub"] is not None,
            r["v_sub"] or 0.0,
            r["model"],
        ),
    )


def summary(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The joint fits in short: RMS, decades, points, and each parameter as [value, stderr]."""
    out = []
    for r in order(rows):
        if r["v_sub"] is not None:
            continue
        out.append(
            {
                "device_id": r["device_id"],
                "temperature_k": r["temperature_k"],
                "model": r["model"],
                "v_subs": list(r["v_subs"]),
                "rms_decades": r["rms_decades"],
                "ic_decades": r["ic_decades"],
                "n_points": r["n_points"],
                "n_excluded": r["n_excluded"],
                "params": {n: [v, e] for n, v, e in zip(r["param_names"], r["values"], r["stderr"], strict=True)},
            }
        )
    return out


def baseline_ratios(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per (device, T) joint fit: the Gummel–Poon RMS over the cryo4k RMS (how much the 4 K
    model's extra physics buys); only where both models were fitted."""
    joint = {(r["device_id"], r["temperature_k"], r["model"]): r for r in rows if r["v_sub"] is None}
    out = []
    for (d, t, m), r in sorted(joint.items()):
        gp = joint.get((d, t, "gummel_poon"))
        if m == "cryo4k" and gp is not None:
            ratio = gp["rms_decades"] / max(r["rms_decades"], 1e-12)
            out.append(
                {
                    "device_id": d,
                    "temperature_k": t,
                    "cryo4k": r["rms_decades"],
                    "gummel_poon": gp["rms_decades"],
                    "ratio": ratio,
                }
            )
    return out


@task(name="device-plots", cache_policy=NO_CACHE)
def plots_task(spec: StoreSpec, run_id: str, config: dict[str, Any]) -> dict[str, Any]:
    """The three PNGs of a run from what the store holds (measurements and every fit row)."""
    from trustflow.tasks.device import plots

    store = spec.open()
    rows = order(store.read_table(StageRef(FLOW, run_id, names.FITS)).to_pylist())
    table = read_measurements(store, config["dataset"])
    meas = table.to_pylist()
    written = []
    for name, png in (
        (GUMMEL_PNG, plots.gummel_plot(meas, rows)),
        (BETA_PNG, plots.beta_plot(meas, rows)),
        (RESIDUALS_PNG, plots.residuals_plot(meas, rows)),
    ):
        store.write_bytes_atomic(store.path("runs", FLOW, run_id, "plots", name), png)
        written.append(name)
    return {"plots": written, "fits": summary(rows), "baseline": baseline_ratios(rows)}


def _g(v: float) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4g}"


def parameter_rows(fits: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per (joint fit, parameter): the Prefect table artifact."""
    out = []
    for f in fits:
        for name, (value, err) in f["params"].items():
            out.append(
                {
                    "device": f["device_id"],
                    "T [K]": f["temperature_k"],
                    "model": f["model"],
                    "parameter": name,
                    "value": _g(value),
                    "stderr": _g(err),
                    "RMS [dec]": round(f["rms_decades"], 4),
                }
            )
    return out


def publish_summary(store_url: str, run_id: str, result: Mapping[str, Any]) -> None:
    """The run's Prefect artifacts: the parameter table and a markdown summary."""
    create_table_artifact(
        key="device-fit-parameters", table=parameter_rows(result["fits"]), description=f"device fits {run_id}"
    )
    lines = [
        f"# Device-model fits `{run_id}`",
        "",
        "| device | T [K] | model | V_sub [V] | RMS [decades] | I_C decades | points used / excluded |",
        "|---|---:|---|---|---:|---:|---|",
    ]
    for f in result["fits"]:
        vs = ", ".join(f"{v:g}" for v in f["v_subs"])
        lines.append(
            f"| {f['device_id']} | {f['temperature_k']:g} | {f['model']} | {vs} | {f['rms_decades']:.4f} "
            f"| {f['ic_decades']:.1f} | {f['n_points']} / {f['n_excluded']} |"
        )
    for b in result["baseline"]:
        lines.append(
            f"\n{b['device_id']} at {b['temperature_k']:g} K: Gummel–Poon RMS {b['gummel_poon']:.3f} / "
            f"cryo4k {b['cryo4k']:.4f} = {b['ratio']:.1f}×"
        )
    lines.append(f"\nfits: `{store_url}/runs/{FLOW}/{run_id}/{names.FITS}/`")
    lines.append(f"plots: `{store_url}/runs/{FLOW}/{run_id}/plots/` ({GUMMEL_PNG}, {BETA_PNG}, {RESIDUALS_PNG})")
    create_markdown_artifact(key="device-fit-summary", markdown="\n".join(lines))


__all__ = [
    "BETA_PNG",
    "GUMMEL_PNG",
    "RESIDUALS_PNG",
    "baseline_ratios",
    "build_chunk_table",
    "check_config",
    "fit_row",
    "fits_task",
    "order",
    "parameter_rows",
    "plan_chunks",
    "plan_units",
    "plots_task",
    "publish_summary",
    "read_measurements",
    "row_key",
    "run_id_of",
    "summary",
]
