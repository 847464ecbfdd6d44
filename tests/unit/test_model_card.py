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
