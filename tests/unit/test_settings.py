from __future__ import annotations

import json
from pathlib import Path

import pytest

from trustflow.errors import ConfigError
from trustflow.settings import load_settings


def test_defaults_put_the_store_under_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUSTFLOW_HOME", str(tmp_path / "h"))
    s = load_settings()
    assert s.effective_store_url == f"file://{tmp_path / 'h' / 'store'}"
    assert s.ray_address is None and s.prefect_api_url is None


def test_env_vars_and_standard_aliases(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUSTFLOW_STORE_URL", "s3://bucket/prefix/")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    monkeypatch.setenv("TRUSTFLOW_SEAWEEDFS__S3_PORT", "18333")
    s = load_settings()
    assert s.store_url == "s3://bucket/prefix"
    assert s.s3_endpoint_url == "http://127.0.0.1:9000"
    assert s.s3_access_key_id is not None and s.s3_access_key_id.get_secret_value() == "AKIDEXAMPLE"
    assert s.prefect_api_url == "http://127.0.0.1:4200/api"
    assert s.seaweedfs.s3_port == 18333


def test_yaml_file_is_read_and_env_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "tf.yaml"
    cfg.write_text(
        "store_url: s3://from-yaml\nray_address: auto\n"
        "llm_endpoints:\n  critic:\n    base_url: http://127.0.0.1:8000/v1\n    model: qwen\n    api_key: sk-secret-123\n"
    )
    monkeypatch.setenv("TRUSTFLOW_CONFIG", str(cfg))
    monkeypatch.setenv("TRUSTFLOW_RAY_ADDRESS", "ray://head:10001")
    s = load_settings()
    assert s.store_url == "s3://from-yaml"
    assert s.ray_address == "ray://head:10001"
    assert s.llm_endpoints["critic"].model == "qwen"


def test_masked_dump_never_contains_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "tf.yaml"
    cfg.write_text("llm_endpoints:\n  t:\n    base_url: http://x/v1\n    model: m\n    api_key: sk-secret-123\n")
    monkeypatch.setenv("TRUSTFLOW_CONFIG", str(cfg))
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "very-secret-value")
    text = json.dumps(load_settings().masked_dump())
    assert "sk-secret-123" not in text and "very-secret-value" not in text
    assert '"s3_secret_access_key": "***"' in text


def test_invalid_store_url_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUSTFLOW_STORE_URL", "ftp://nope")
    with pytest.raises(ConfigError, match="store_url"):
        load_settings()


def test_bad_yaml_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "broken.yaml"
    cfg.write_text("store_url: [unclosed\n")
    monkeypatch.setenv("TRUSTFLOW_CONFIG", str(cfg))
    with pytest.raises(ConfigError, match="broken.yaml"):
        load_settings()


def test_yaml_never_constructs_python_objects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "evil.yaml"
    cfg.write_text("store_url: !!python/object/apply:os.system ['echo pwned']\n")
    monkeypatch.setenv("TRUSTFLOW_CONFIG", str(cfg))
    with pytest.raises(ConfigError, match="evil.yaml"):
        load_settings()


def test_unknown_setting_is_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "tf.yaml"
    cfg.write_text("stor_url: s3://typo\n")
    monkeypatch.setenv("TRUSTFLOW_CONFIG", str(cfg))
    with pytest.raises(ConfigError, match="stor_url"):
        load_settings()


@pytest.mark.parametrize(
    ("yaml_text", "dotted"),
    [
        ("seaweedfs: {s3_prot: 1}\n", "seaweedfs.s3_prot"),
        ("prefect_server: {prot: 4201}\n", "prefect_server.prot"),
        (
            "llm_endpoints:\n  judge: {base_url: 'http://127.0.0.1:8000/v1', model: m, api_kee: x}\n",
            "llm_endpoints.judge.api_kee",
        ),
        ("stor_url: s3://typo\n", "stor_url"),
    ],
)
def test_unknown_keys_are_rejected_at_every_level_naming_file_and_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, yaml_text: str, dotted: str
) -> None:
    cfg = tmp_path / "typo.yaml"
    cfg.write_text(yaml_text)
    monkeypatch.setenv("TRUSTFLOW_CONFIG", str(cfg))
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "typo.yaml" in str(err.value) and repr(dotted) in str(err.value), str(err.value)


def test_known_nested_keys_and_aliases_still_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "ok.yaml"
    cfg.write_text("seaweedfs: {s3_port: 18334, bucket: b}\nAWS_REGION: eu-west-1\n")
    monkeypatch.setenv("TRUSTFLOW_CONFIG", str(cfg))
    s = load_settings()
    assert s.seaweedfs.s3_port == 18334 and s.s3_region == "eu-west-1"


def test_unknown_nested_key_from_the_environment_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUSTFLOW_SEAWEEDFS", '{"s3_prot": 1}')
    with pytest.raises(ConfigError, match=r"seaweedfs\.s3_prot"):
        load_settings()
