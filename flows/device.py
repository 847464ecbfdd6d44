"""Device-model fitting flow (issue 20, phase 2): ``device_fit`` and its storage-event entry
``device_fit_landed``.

An ingested ``gummel`` dataset's sweeps are fitted with each compact model — per (device, T) one
joint fit across every V_sub curve and, with ``per_curve``, one fit per curve — fanned out on
Ray (one task per (device, T)), each fit a keyed row of the ``fits`` stage: resumable per key,
a rerun writes no row. Then the Gummel/β/residual plots and the Prefect artifacts (a table of
the fitted parameters). ``device_fit_landed`` is what the ``device-fit`` deployment runs when a
measurement file lands under ``incoming/gummel/``: ingest (a no-op for bytes seen before), fit.

The stages are in ``tasks/device/stages.py``; this flow only composes them.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from trustflow import names
from trustflow.data.store import ArtifactStore
from trustflow.settings import load_settings
from trustflow.tasks.device import stages
from trustflow.tasks.ray_parts import StoreSpec

DEFAULT_MODELS = ("cryo4k", "gummel_poon")


def _store() -> ArtifactStore:
    settings = load_settings()
    return ArtifactStore(settings.effective_store_url, settings)


def run_config(**options: Any) -> dict[str, Any]:
    """The run's configuration as stored (lists, not tuples), checked: one ``ConfigError``."""
    config = {
        "dataset": str(options["dataset"]),
        "models": list(options["models"]),
        "per_curve": bool(options["per_curve"]),
        "starts": int(options["starts"]),
        "max_nfev": int(options["max_nfev"]),
        "seed": int(options["seed"]),
    }
    stages.check_config(config)
    return config


@flow(name=names.DEVICE_FIT, flow_run_name="device-{run_label}")
def device_fit(
    dataset: str,
    models: list[str] = list(DEFAULT_MODELS),  # noqa: B006  (Prefect shows the defaults)
    per_curve: bool = True,
    starts: int = 3,
    max_nfev: int = 400,
    seed: int = 0,
    parallel: bool = True,
    run_label: str = "fit",
) -> dict[str, Any]:
    """Fit every (device, T) of ``dataset``; returns the run id, the fits stage's counts, the
    joint fits (parameters with standard errors) and the baseline/4 K RMS ratios."""
    config = run_config(
        dataset=dataset, models=models, per_curve=per_curve, starts=starts, max_nfev=max_nfev, seed=seed
    )
    run_id = stages.run_id_of(config)
    store = _store()
    spec = StoreSpec.of(store)
    computed = stages.fits_task(spec, run_id, config, parallel)
    shown = stages.plots_task(spec, run_id, config)
    stages.publish_summary(store.url, run_id, shown)
    return {"run_id": run_id, "dataset": dataset, "counts": computed, **shown}


@flow(name="device_fit_landed", flow_run_name="device-landed-{key}")
def device_fit_landed(key: str) -> dict[str, Any]:
    """A Gummel file (or a folder's ``_READY`` marker) landed under ``incoming/gummel/``: ingest
    it as a ``gummel`` dataset (the same bytes give the same id, so a re-announce is a no-op)
    and fit it with the default models."""
    from trustflow.errors import ConfigError
    from trustflow.flows.ingest import ingest_flow
    from trustflow.tasks.continuous.stages import landed_source

    store = _store()
    kind, source = landed_source(store, key)
    if kind != names.GUMMEL:
        raise ConfigError(f"{key}: device_fit_landed takes files under incoming/gummel/, not incoming/{kind}/")
    info = ingest_flow(source=source, kind=kind, store_url=store.url)
    return device_fit(dataset=info["dataset_id"], run_label="landed")


def demo_device(workdir: str | None = None) -> dict[str, Any]:
    """The demo step: the synthetic lab (one LBJT, 4/77/300 K, V_sub 0/3/6 V, 60 points per
    sweep) written as a CSV, ingested as ``gummel``, fitted with both models on Ray."""
    import tempfile
    from pathlib import Path

    from trustflow.flows.ingest import ingest_flow
    from trustflow.tasks.device.synthetic import DeviceTruth, LabConfig, write_lab_csv

    with tempfile.TemporaryDirectory(prefix="trustflow-device-", dir=workdir) as folder:
        csv = write_lab_csv(
            Path(folder) / "lab.csv", DeviceTruth(), LabConfig(points=60), [4.0, 77.0, 300.0], [0.0, 3.0, 6.0]
        )
        info = ingest_flow(source=str(csv), kind=names.GUMMEL)  # the store keeps its own copy
    return device_fit(dataset=info["dataset_id"], starts=2, run_label="demo")


__all__ = ["DEFAULT_MODELS", "demo_device", "device_fit", "device_fit_landed", "run_config"]
