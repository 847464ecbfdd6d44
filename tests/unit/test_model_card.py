"""Model cards: validation with errors naming the card and field; objects under models/ → cards."""

from __future__ import annotations

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
