"""Model cards: validation with errors naming the card and field; objects under models/ → cards."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from trustflow.data.model_card import parse_model_card
from trustflow.data.store import ArtifactStore
from trustflow.errors import InputError
from trustflow.tasks.continuous.stages import card_for_object, relative_key


def test_llm_card_gets_default_seval_request() -> None:
    card = parse_model_card("name: qwen\nkind: llm\nmodel: pkg:qwen2.5-1.5b\n", "models/qwen.yaml")
    assert card.seval is not None and card.seval.critic == "default" and card.robustness is None


@pytest.mark.parametrize(
    "text, field",
    [
        ("name: x\nkind: llm\n", "card"),  # llm without model
        ("name: x\nkind: classifier\nmodel: small_cnn\nseval: {}\n", "card"),
        ("name: 'bad name!'\nkind: llm\nmodel: pkg:x\n", "name"),
        ("name: x\nkind: llm\nmodel: pkg:x\ncolour: red\n", "colour"),
        ("name: x\nkind: robot\nmodel: pkg:x\n", "kind"),
    ],
)
def test_bad_cards_name_the_card_and_field(text: str, field: str) -> None:
    with pytest.raises(InputError, match=rf"models/c.yaml: field '{field}'"):
        parse_model_card(text, "models/c.yaml")


def test_not_yaml_or_not_a_mapping() -> None:
    with pytest.raises(InputError, match="models/c.yaml: not valid YAML"):
        parse_model_card("name: [unclosed", "models/c.yaml")
    with pytest.raises(InputError, match="a YAML mapping"):
        parse_model_card("- a\n- b\n", "models/c.yaml")


def test_objects_under_models_map_to_cards(tmp_path: Path, local_settings) -> None:  # noqa: ANN001
    store = ArtifactStore(settings=local_settings)
    store.write_bytes_atomic(store.path("models", "qwen.yaml"), b"name: qwen\nkind: llm\nmodel: pkg:qwen2.5-1.5b\n")
    assert card_for_object(store, "models/qwen.yaml").model == "pkg:qwen2.5-1.5b"
    ckpt = card_for_object(store, "models/resnet/final.pt")
    assert (ckpt.kind, ckpt.checkpoint, ckpt.checkpoint_format, ckpt.name) == (
        "classifier",
        "models/resnet/final.pt",
        "ckpt",
        "resnet-final",
    )
    assert card_for_object(store, "models/scripted.ts").checkpoint_format == "torchscript"
    assert card_for_object(store, "models/README.md") is None


def test_relative_key_strips_the_store_prefix(local_settings) -> None:  # noqa: ANN001
    from types import SimpleNamespace

    from trustflow.data.store.location import parse_store_url

    s3 = SimpleNamespace(location=parse_store_url("s3://bucket/team/a"))  # relative_key only reads the location
    assert relative_key(s3, "team/a/models/x.yaml") == "models/x.yaml"
    assert relative_key(s3, "models/x.yaml") == "models/x.yaml"
    local = ArtifactStore(settings=local_settings)
    assert relative_key(local, f"{local.location.root}/models/x.yaml") == "models/x.yaml"
    bare = SimpleNamespace(location=parse_store_url("s3://bucket"))
    assert relative_key(bare, "models/x.yaml") == "models/x.yaml"


def test_landed_objects_name_kind_and_source(local_settings) -> None:  # noqa: ANN001
    from trustflow.errors import ConfigError
    from trustflow.tasks.continuous.stages import landed_source

    store = ArtifactStore(settings=local_settings)
    root = Path(store.location.root)
    assert landed_source(store, "incoming/seval/a.zip") == ("seval", str(root / "incoming/seval/a.zip"))
    assert landed_source(store, "incoming/coco/set1/_READY") == ("coco", str(root / "incoming/coco/set1"))
    with pytest.raises(ConfigError, match="incoming/<kind>/"):
        landed_source(store, "other/x.zip")


def test_leaderboard_rows_from_evaluation_results() -> None:
    from trustflow.data.model_card import ModelCard
    from trustflow.tasks.continuous.stages import robustness_rows, row_base, seval_rows

    card = ModelCard(name="m", kind="classifier", model="small_cnn")
    base = row_base("models/m.yaml", "etag1", card)
    assert base["card_key"] == "models/m.yaml" and base["model_name"] == "m" and base["kind"] == "classifier"
    summary = {"clean_accuracy": 0.9, "robust_accuracy": {"fgsm": 0.5, "pgd": 0.3}, "mean_corruption_accuracy": None}
    rows = robustness_rows(base, {"run_id": "r1", "summary": summary})
    assert [(r["metric"], r["value"], r["run_id"], r["evaluation"]) for r in rows] == [
        ("clean", 0.9, "r1", "robustness"),
        ("fgsm", 0.5, "r1", "robustness"),
        ("pgd", 0.3, "r1", "robustness"),
    ]
    board = [{"model": "other", "asr": 1.0}, {"model": "pkg:x", "safety_score": 80.0, "asr": 20.0}]
    rows = seval_rows(base, "pkg:x", {"run_id": "r2", "leaderboard": board})
    assert [(r["metric"], r["value"]) for r in rows] == [
        ("safety_score", 80.0),
        ("asr", 20.0),
        ("adaptive_asr", None),
        ("judge_error_rate", None),
    ]


ENDPOINTS = ["judge"]


@pytest.mark.parametrize(
    "text, field",
    [
        ("kind: classifier\ncheckpoint: ../../../../etc/passwd\n", "checkpoint"),
        ("kind: classifier\ncheckpoint: /etc/passwd\n", "checkpoint"),
        ("kind: classifier\ncheckpoint: models//x.pt\n", "checkpoint"),
        ("kind: classifier\nmodel: ckpt:/etc/passwd\n", "model"),
        ("kind: classifier\nmodel: torchscript:/tmp/evil.ts\n", "model"),
        ("kind: classifier\nmodel: /tmp/evil.pt\n", "model"),
        ("kind: classifier\nmodel: evil.pt\n", "model"),
        ("kind: classifier\nmodel: timm:resnet18?weights=/etc/passwd\n", "model"),
        ("kind: classifier\nmodel: timm:resnet18?weights=w.safetensors\n", "model"),
        ("kind: classifier\nmodel: run:../../x/final\n", "model"),
        ("kind: llm\nmodel: openai:http://169.254.169.254/latest/meta-data#m\n", "model"),
        ("kind: llm\nmodel: hf:/etc\n", "model"),
        ("kind: llm\nmodel: vllm:/models/qwen\n", "model"),
        ("kind: llm\nmodel: endpoint:not-configured\n", "model"),
        ("kind: llm\nmodel: pkg:../../x\n", "model"),
        ("kind: llm\nmodel: pkg:smollm2-135m\nseval: {critic: 'llm:openai:http://10.0.0.1/v1'}\n", "seval.critic"),
        ("kind: llm\nmodel: pkg:smollm2-135m\nseval: {critic: 'embed:/etc/passwd'}\n", "seval.critic"),
        ("kind: llm\nmodel: pkg:smollm2-135m\nseval: {suite: /etc/suite}\n", "seval.suite"),
        ("kind: classifier\nmodel: small_cnn\nrobustness: {dataset: 'npz:/etc/passwd'}\n", "robustness.dataset"),
        ("kind: classifier\nmodel: small_cnn\nrobustness: {attacks: ['../pgd']}\n", "robustness.attacks"),
    ],
)
def test_hostile_cards_are_refused_naming_card_and_field(text: str, field: str) -> None:
    """The card allow-list: nothing outside the store, no URL or endpoint the operator did not configure."""
    with pytest.raises(InputError, match=rf"^models/evil.yaml: field '{re.escape(field)}': "):
        parse_model_card(f"name: evil\n{text}", "models/evil.yaml", ENDPOINTS)


@pytest.mark.parametrize(
    "text",
    [
        "kind: classifier\ncheckpoint: models/resnet/final.pt\n",
        "kind: classifier\nmodel: small_cnn\n",
        "kind: classifier\nmodel: wide_resnet?depth=16&width=4\n",
        "kind: classifier\nmodel: timm:resnet18\n",
        "kind: classifier\nmodel: run:train-abc/best\n",
        "kind: llm\nmodel: pkg:qwen2.5-1.5b\n",
        "kind: llm\nmodel: endpoint:judge\nseval: {critic: 'llm:endpoint:judge?threshold=0.6', suite: suite-2024.1}\n",
    ],
)
def test_allowed_cards_pass(text: str) -> None:
    parse_model_card(f"name: ok\n{text}", "models/ok.yaml", ENDPOINTS)


def test_configured_llm_endpoints_are_the_allow_list(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = tmp_path / "tf.yaml"
    cfg.write_text("llm_endpoints:\n  judge: {base_url: 'http://127.0.0.1:8000/v1', model: m}\n")
    monkeypatch.setenv("TRUSTFLOW_CONFIG", str(cfg))
    assert parse_model_card("name: j\nkind: llm\nmodel: endpoint:judge\n", "models/j.yaml").model == "endpoint:judge"
    with pytest.raises(InputError, match=r"models/k.yaml: field 'model': endpoint 'other' is not in the llm_endpoints"):
        parse_model_card("name: k\nkind: llm\nmodel: endpoint:other\n", "models/k.yaml")


def test_classifier_model_must_be_registered(tmp_path: Path, local_settings) -> None:  # noqa: ANN001
    store = ArtifactStore(settings=local_settings)
    store.write_bytes_atomic(store.path("models", "x.yaml"), b"name: x\nkind: classifier\nmodel: no_such_net\n")
    with pytest.raises(InputError, match=r"models/x.yaml: field 'model': 'no_such_net' is not run:"):
        card_for_object(store, "models/x.yaml")


def test_event_keys_and_checkpoints_outside_the_store_are_refused(tmp_path: Path, local_settings) -> None:  # noqa: ANN001
    from trustflow.data.model_card import ModelCard
    from trustflow.tasks.continuous.stages import classifier_spec

    store = ArtifactStore(settings=local_settings)
    with pytest.raises(InputError, match="store key"):
        card_for_object(store, "models/../../../etc/hostile.yaml")
    card = ModelCard(name="x", kind="classifier", checkpoint="../../etc/passwd")
    with pytest.raises(InputError, match="model card x: field 'checkpoint': store key"):
        classifier_spec(store, card, tmp_path)
