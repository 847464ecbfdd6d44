"""Few-shot adaptation on ImageNet-E style attribute edits (issue 18, phase 3): the edit set's
originals as the few-shot task, the edited test objects scored per attribute, and the deltas
of an adapted model against the unadapted backbone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from trustflow.data.store import ArtifactStore, StageRef
from trustflow.errors import ConfigError, InputError
from trustflow.tasks.fewshot.data import load_fewshot_set
from trustflow.tasks.fewshot.robustness import attribute_accuracy, attribute_deltas
from trustflow.tasks.fewshot.stages import episode_rows, export_edits, set_name
from trustflow.tests.attribute_fixtures import CLASSES, edit_rows, objects, write_edits


@pytest.fixture()
def edits_spec(local_settings) -> str:  # noqa: ANN001
    store = ArtifactStore(settings=local_settings)
    write_edits(store, StageRef("attribute_robustness", "e-few", "edits"), edit_rows(objects(10)))
    return export_edits(store, "attribute_robustness/e-few/edits")


class Colour(nn.Module):
    """Names a fixture object by its shape's colour (red, green, blue): right on originals and
    flips alike, since a flip keeps the colours."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        saturated = (x.max(1).values - x.min(1).values) > 0.5  # the shape's pixels, not the grey noise
        return (x * saturated[:, None]).sum((2, 3))  # per-channel mass: the argmax is the class


class Constant(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tensor([[1.0, 0.0, 0.0]]).repeat(len(x), 1)


def test_edit_set_is_the_originals_split_by_object_and_carries_the_test_objects_edits(edits_spec: str) -> None:
    data = load_fewshot_set(edits_spec, size=16)
    assert data.name == set_name(edits_spec) and data.test.classes == CLASSES
    assert len(data.train.y) + len(data.test.y) == 30 and np.bincount(data.test.y).tolist() == [4, 4, 4]
    e = data.edits
    assert e is not None and sorted(e.query.tolist()) == list(range(12)) and set(e.attribute) == {"flip"}
    # each edit is its own query object's original, mirrored, with that object's label
    np.testing.assert_array_equal(e.x, data.test.x[e.query][..., ::-1])
    np.testing.assert_array_equal(e.y, data.test.y[e.query])


def test_export_is_written_once_and_a_bad_stage_is_named(local_settings, edits_spec: str) -> None:  # noqa: ANN001
    store = ArtifactStore(settings=local_settings)
    path = Path(edits_spec.removeprefix("edits:"))
    before = path.stat().st_mtime_ns
    assert export_edits(store, "e-few") == edits_spec and path.stat().st_mtime_ns == before
    with pytest.raises(InputError, match="--edits: no committed stage"):
        export_edits(store, "e-none")
    with pytest.raises(ConfigError, match="no such file"):
        load_fewshot_set("edits:/nonexistent.parquet")


def test_attribute_deltas_pair_edits_with_their_originals(edits_spec: str) -> None:
    data = load_fewshot_set(edits_spec, size=16)
    assert data.edits is not None
    query = np.arange(len(data.test.y))
    colour = attribute_accuracy(Colour(), data.test, data.edits, query)["flip"]
    assert colour == {"accuracy": 1.0, "original": 1.0, "drop": 0.0, "images": 12}
    out = attribute_deltas(Colour(), Constant(), data.test, data.edits, query[:6])  # only the first 6 objects
    share0 = float(np.mean(data.test.y[:6] == 0))
    assert out["unadapted"]["flip"]["images"] == 6
    assert out["delta"] == pytest.approx({"attr:flip": 1.0 - share0, "drop:flip": 0.0})


def test_episode_rows_add_per_attribute_deltas_vs_the_unadapted_backbone(edits_spec: str) -> None:
    torch.set_num_threads(1)
    config = {"backbone": "tiny_cnn?width=8&size=16", "epochs": 2, "n_query": None, "robustness": False}
    units = [
        {"method": m, "set": set_name(edits_spec), "spec": edits_spec, "k": 2, "seed": 0}
        for m in ("prototype", "linear_probe")
    ]
    proto, probe = episode_rows(config, units)
    assert json.loads(proto["deltas"]) == {"attr:flip": 0.0, "drop:flip": 0.0}  # the backbone vs itself
    deltas = json.loads(probe["deltas"])
    assert set(deltas) == {"attr:flip", "drop:flip"} and all(-1 <= v <= 1 for v in deltas.values())
    assert proto["delta_attack"] is None and probe["n_query"] == 12
