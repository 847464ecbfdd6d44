"""The synthetic set's options (an easier set for the adversarial-training comparison)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from trustflow.data.synthetic_objects import synthetic_object
from trustflow.errors import InputError
from trustflow.tasks.ingest.kinds.synthetic_objects import build_synthetic_rows, read_settings


def test_plain_flat_large_objects_follow_the_options() -> None:
    for i in range(20):
        label, img, mask = synthetic_object(
            i, seed=5, size=32, backgrounds=("flat",), textures=("plain",), area=(0.2, 0.45)
        )
        background = img[~mask]
        assert (background == background[0]).all()  # one flat colour
        obj = img[mask]
        assert (obj == obj[0]).all()  # no stripes or speckles
        assert mask.mean() <= 0.45
        if label != "star":  # the thinnest shape may stay below a high minimum
            assert mask.mean() >= 0.2
        again = synthetic_object(i, seed=5, size=32, backgrounds=("flat",), textures=("plain",), area=(0.2, 0.45))
        assert np.array_equal(again[1], img) and np.array_equal(again[2], mask)


def test_default_options_keep_the_original_set() -> None:
    plain = synthetic_object(3, seed=1, size=32)
    explicit = synthetic_object(3, seed=1, size=32, area=(0.08, 0.4))
    assert np.array_equal(plain[1], explicit[1])


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="backgrounds"):
        synthetic_object(0, backgrounds=("sky",))
    with pytest.raises(ValueError, match="area"):
        synthetic_object(0, area=(0.5, 0.2))


def test_settings_file_passes_options_through(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"seed": 4, "size": 32, "textures": ["plain"], "backgrounds": ["flat"]}))
    settings = read_settings(path)
    options = settings.generator_options()
    assert options == {"backgrounds": ("flat",), "textures": ("plain",)}
    rows = build_synthetic_rows((4, 32, 0, 2, options)).to_pylist()
    assert [r["label"] for r in rows] == [synthetic_object(i, 4, 32, **options)[0] for i in range(2)]
    assert read_settings(tmp_path / "s.json").generator_options() == options
    path.write_text(json.dumps({"textures": ["velvet"]}))
    with pytest.raises(InputError, match="textures"):
        read_settings(path)
    path.write_text(json.dumps({"area": [0.5, 0.1]}))
    with pytest.raises(InputError, match="area"):
        read_settings(path)
