"""The fashion-mnist dataset kind reads the idx.gz files of Debian's dataset-fashion-mnist."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from trustflow.data.vision.datasets import load_dataset
from trustflow.errors import InputError


def _write_idx(path: Path, arr: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + arr.astype(np.uint8).tobytes())


def _fake(root: Path, n: int = 6) -> None:
    rng = np.random.default_rng(0)
    for prefix in ("train", "t10k"):
        _write_idx(root / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)


def test_reads_idx_files_as_float_images(tmp_path: Path) -> None:
    _fake(tmp_path)
    ds = load_dataset(f"fashion-mnist:{tmp_path}", "test", 14)
    assert ds.x.shape == (6, 1, 14, 14) and ds.x.dtype == np.float32
    assert ds.x.min() >= 0.0 and ds.x.max() <= 1.0
    assert ds.y.tolist() == [0, 1, 2, 3, 4, 5] and ds.num_classes == 10 and ds.classes[9] == "ankle boot"


def test_bad_or_missing_files_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="dataset-fashion-mnist"):
        load_dataset(f"fashion-mnist:{tmp_path}", "train")
    _fake(tmp_path)
    with gzip.open(tmp_path / "train-labels-idx1-ubyte.gz", "wb") as fh:
        fh.write(b"\x00\x00\x08\x03" + (1).to_bytes(4, "big"))
    with pytest.raises(InputError, match="not an idx file"):
        load_dataset(f"fashion-mnist:{tmp_path}/", "train")
