from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml
from prefect import Flow

ROOT = Path(__file__).resolve().parents[2]


def test_every_deployment_entrypoint_is_a_flow() -> None:
    doc = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    assert doc["deployments"], "prefect.yaml declares no deployments"
    for dep in doc["deployments"]:
        path, name = dep["entrypoint"].split(":")
        spec = importlib.util.spec_from_file_location(f"entry_{dep['name']}", ROOT / path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        flow = getattr(module, name)
        assert isinstance(flow, Flow), dep["entrypoint"]
        params = set(flow.parameters.properties)
        assert set(dep.get("parameters", {})) <= params, f"{dep['name']}: unknown parameters"
        assert dep["work_pool"]["name"] == "trustflow-process"


def test_fingerprint_trace_is_deployed_inactive_until_sources_are_named() -> None:
    from trustflow import names

    doc = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    dep = {d["name"]: d for d in doc["deployments"]}["fingerprint-trace"]
    path, name = dep["entrypoint"].split(":")
    spec = importlib.util.spec_from_file_location("entry_fp_trace", ROOT / path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert getattr(module, name).name == names.FINGERPRINT_TRACE
    assert dep["schedules"][0]["active"] is False


def test_fewshot_adapt_is_deployed_with_valid_specs() -> None:
    from trustflow import names
    from trustflow.flows.fewshot import run_config

    doc = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    dep = {d["name"]: d for d in doc["deployments"]}["fewshot-adapt"]
    path, name = dep["entrypoint"].split(":")
    spec = importlib.util.spec_from_file_location("entry_fewshot", ROOT / path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    flow = getattr(module, name)
    assert flow.name == names.FEWSHOT_ADAPT
    defaults = {k: v.get("default") for k, v in flow.parameters.properties.items()}
    params = {**defaults, **dep["parameters"]}
    params.pop("parallel"), params.pop("run_label")
    assert run_config(**params)["seeds"] == [0, 1, 2]  # every spec in the deployment resolves


def test_device_fit_is_triggered_by_gummel_files_landing() -> None:
    """``incoming/gummel/<file>`` created → ``device_fit_landed(key)``; the flow refuses other kinds."""
    import pytest

    from trustflow.errors import ConfigError
    from trustflow.flows.device import device_fit_landed

    doc = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    dep = {d["name"]: d for d in doc["deployments"]}["device-fit"]
    assert dep["entrypoint"] == "flows/device.py:device_fit_landed"
    (trigger,) = dep["triggers"]
    assert trigger["match"] == {"trustflow.path": "incoming/gummel/*"}
    assert trigger["expect"] == ["trustflow.object.created"] and trigger["enabled"] is True
    assert set(trigger["parameters"]) == set(device_fit_landed.parameters.properties) == {"key"}
    with pytest.raises(ConfigError, match="incoming/gummel/"):
        device_fit_landed.fn("incoming/seval/a.zip")


def test_asr_deployments_have_valid_specs() -> None:
    """Every method and shift spec in the asr-train/asr-evaluate deployments resolves (a typo
    would fail only when the deployment runs)."""
    from trustflow import names
    from trustflow.tasks.asr.distributed import make_jobs
    from trustflow.tasks.asr.shifts.base import SPEECH_SHIFTS

    doc = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    deps = {d["name"]: d for d in doc["deployments"]}
    flows = {}
    for key in ("asr-train", "asr-evaluate"):
        path, name = deps[key]["entrypoint"].split(":")
        spec = importlib.util.spec_from_file_location(f"entry_{key}", ROOT / path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        flows[key] = getattr(module, name)
    assert flows["asr-train"].name == names.ASR_TRAIN and flows["asr-evaluate"].name == names.ASR_EVALUATE
    train = deps["asr-train"]["parameters"]
    jobs = make_jobs(train["dataset"], train["methods"], {"workers": train["workers"]}, {"epochs": train["epochs"]})
    assert len(jobs) == len(train["methods"]) and all(j.workers == 2 for j in jobs)
    for shift in deps["asr-evaluate"]["parameters"]["shifts"]:
        SPEECH_SHIFTS.create(shift)
