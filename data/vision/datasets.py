"""Image classification sets as in-memory arrays: ``x`` float32 NCHW in [0, 1], ``y`` int64.

``load_dataset(spec, split, size)`` accepts (in the registry's spec grammar, ``kind[:PATH]``)

    digits              scikit-learn's 8×8 grey digits (1,797 images, 10 classes, 1 channel,
                        pixel values / 16); a stratified 80/20 train/test split, seed 0;
                        ``size`` upsamples bilinearly (e.g. 32 for CIFAR-sized models)
    npz:PATH            a numpy archive (read with allow_pickle=False) with ``x`` (float32,
                        NCHW, values in [0, 1], 1 or 3 channels) and ``y`` (integers, 0..K-1)
                        and/or ``x_test``/``y_test``. With both pairs split=test reads the
                        test pair; a file with one pair is evaluation data: split=test reads
                        ``x_test``/``y_test`` or else ``x``/``y`` (``held_out`` False: not a
                        training run's probe set); split=train needs ``x``/``y``. Optional
                        ``classes`` (strings). ``size`` resizes bilinearly.
    imagefolder:DIR     ``DIR/<class>/*.png`` (split 80/20 as for digits) or
                        ``DIR/train/<class>/*`` with ``DIR/val|valid|validation|test/<class>/*``;
                        every image resized to ``size`` × ``size`` (default 32); grey when all
                        images are grey, else RGB
    fashion-mnist[:DIR] Fashion-MNIST (60k/10k 28×28 grey, 10 classes) from the four idx
                        ``*.gz`` files of Debian's ``dataset-fashion-mnist`` (default DIR
                        /usr/share/datasets/fashion-mnist; ``make datasets`` installs it)
    cifar10:DIR         CIFAR-10 **without unpickling**: the official python batches
                        (data_batch_1 ...) are pickles, which can run code on load, so they are
                        refused. Accepted instead: ``DIR/cifar10.npz`` (or DIR being that
                        file) with ``x_train``, ``y_train``, ``x_test``, ``y_test`` — images
                        either uint8 NHWC (the layout of the usual numpy/Keras export) or
                        float32 NCHW in [0, 1] — or an image-folder layout ``DIR/train/<class>``
                        + ``DIR/test/<class>``. The error for a pickle-batch directory shows a
                        one-off conversion to run where that data is trusted.

``mean``/``std`` (per channel) come from the train split, whichever split is loaded, so a
model's ``Normalize`` can be set from either (an evaluation-only npz: from its one pair).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from trustflow.errors import ConfigError, InputError
from trustflow.registry import Options, parse_spec, validate_options

Split = Literal["train", "test"]
TEST_SPLIT_NAMES = ("test", "val", "valid", "validation")
SPLIT_SEED = 0
TEST_FRACTION = 0.2
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@dataclass
class ArrayDataset:
    """One split of an image classification set, in memory."""

    name: str
    split: str
    x: np.ndarray  # float32, (N, C, H, W), values in [0, 1]
    y: np.ndarray  # int64, (N,)
    num_classes: int
    mean: tuple[float, ...]  # per channel, from the train split
    std: tuple[float, ...]
    classes: tuple[str, ...] = field(default=())
    # False when the "test" split is an evaluation-only file's only data (npz with just x, y):
    # fine to evaluate on, not a held-out set for a training run's probe
    held_out: bool = True

    def __post_init__(self) -> None:
        if self.x.ndim != 4 or self.x.dtype != np.float32:
            raise InputError(f"{self.name}: x must be float32 NCHW, got {self.x.dtype} {self.x.shape}")
        if self.y.shape != (self.x.shape[0],) or self.y.dtype != np.int64:
            raise InputError(
                f"{self.name}: y must be int64 with one label per image, got {self.y.dtype} {self.y.shape}"
            )

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def in_channels(self) -> int:
        return int(self.x.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.x.shape[2]), int(self.x.shape[3])

    def subset(self, n_or_indices: int | np.ndarray | list[int]) -> ArrayDataset:
        """The first ``n`` examples, or those at the given indices (a new dataset)."""
        n = n_or_indices
        idx = np.arange(min(int(n), len(self))) if isinstance(n, (int, np.integer)) else np.asarray(n)
        return ArrayDataset(
            self.name,
            self.split,
            self.x[idx],
            self.y[idx],
            self.num_classes,
            self.mean,
            self.std,
            self.classes,
            self.held_out,
        )

    def tensors(self, device: Any = "cpu"):
        """``(x, y)`` as torch tensors (sharing memory on CPU)."""
        import torch

        return torch.from_numpy(self.x).to(device), torch.from_numpy(self.y).to(device)


def channel_mean_std(x: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    xd = x.astype(np.float64, copy=False)
    mean = xd.mean(axis=(0, 2, 3))
    std = xd.std(axis=(0, 2, 3))
    return tuple(float(m) for m in mean), tuple(float(max(s, 1e-6)) for s in std)


def resize_images(x: np.ndarray, size: int | None) -> np.ndarray:
    """Bilinear resize of NCHW float images to ``size`` × ``size`` (no-op when already so)."""
    if size is None or x.shape[2:] == (size, size):
        return x
    if size < 1:
        raise ConfigError(f"image size must be >= 1, got {size}")
    import torch
    import torch.nn.functional as F

    out = F.interpolate(
        torch.from_numpy(np.ascontiguousarray(x)),
        size=(size, size),
        mode="bilinear",
        align_corners=False,
        antialias=size < x.shape[2],
    )
    return out.clamp_(0.0, 1.0).numpy().astype(np.float32, copy=False)


def stratified_split(
    y: np.ndarray, seed: int = SPLIT_SEED, test_fraction: float = TEST_FRACTION
) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic stratified train/test indices (sorted)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    counts = np.bincount(y)
    stratify = y if counts[counts > 0].min() >= 2 else None
    train, test = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=stratify)
    return np.sort(train), np.sort(test)


def _check_split(split: str) -> Split:
    if split not in ("train", "test"):
        raise ConfigError(f"split must be 'train' or 'test', got {split!r}")
    return split  # type: ignore[return-value]


# --------------------------------------------------------------------------- digits


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None, :, :]
    return np.clip(x, 0.0, 1.0), d.target.astype(np.int64)


def _load_digits(split: Split, size: int | None) -> ArrayDataset:
    x, y = _digits()
    train, test = stratified_split(y)
    x_train = resize_images(x[train], size)
    mean, std = channel_mean_std(x_train)
    xs, ys = (x_train, y[train]) if split == "train" else (resize_images(x[test], size), y[test])
    name = "digits" if size is None else f"digits@{size}"
    return ArrayDataset(
        name, split, np.ascontiguousarray(xs), ys.copy(), 10, mean, std, tuple(str(i) for i in range(10))
    )


# --------------------------------------------------------------------------- npz


def _open_npz(path: Path) -> Any:
    if not path.is_file():
        raise InputError(f"{path}: npz file not found")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path}: not a readable .npz archive ({exc})") from None


def _read_array(npz: Any, path: Path, key: str) -> np.ndarray:
    if key not in npz.files:
        raise InputError(f"{path}: array {key!r} missing (arrays present: {', '.join(npz.files) or 'none'})")
    try:
        return npz[key]
    except ValueError as exc:  # object arrays need pickle, which is refused
        raise InputError(
            f"{path}: array {key!r} cannot be read without pickle ({exc}); store plain numeric arrays"
        ) from None


def _check_images(x: np.ndarray, path: Path, key: str, uint8_nhwc: bool = False) -> np.ndarray:
    """float32 NCHW in [0, 1] (or, when allowed, uint8 NHWC scaled by 1/255)."""
    if uint8_nhwc and x.dtype == np.uint8:
        if x.ndim != 4 or x.shape[3] not in (1, 3):
            raise InputError(f"{path}: array {key!r} is uint8 with shape {x.shape}; expected NHWC with 1 or 3 channels")
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255.0)
    if x.dtype != np.float32:
        raise InputError(
            f"{path}: array {key!r} has dtype {x.dtype}; expected float32 images in [0, 1]"
            + (" (or uint8 NHWC)" if uint8_nhwc else "")
        )
    if x.ndim != 4:
        raise InputError(f"{path}: array {key!r} has shape {x.shape}; expected 4-D NCHW (N, C, H, W)")
    if x.shape[1] not in (1, 3):
        hint = " (it looks like NHWC: transpose to NCHW)" if x.shape[3] in (1, 3) else ""
        raise InputError(
            f"{path}: array {key!r} has shape {x.shape}: {x.shape[1]} channels, expected 1 or 3 in NCHW{hint}"
        )
    if x.shape[0] == 0:
        raise InputError(f"{path}: array {key!r} is empty")
    lo, hi = float(np.min(x)), float(np.max(x))
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise InputError(f"{path}: array {key!r} holds NaN or inf values")
    if lo < 0.0 or hi > 1.0:
        raise InputError(f"{path}: array {key!r} has values in [{lo:.4g}, {hi:.4g}]; expected [0, 1] (divide by 255?)")
    return x


def _check_labels(y: np.ndarray, n: int, path: Path, key: str) -> np.ndarray:
    if y.dtype.kind not in "iu":
        raise InputError(f"{path}: array {key!r} has dtype {y.dtype}; expected integer class ids (int64)")
    y = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y
    if y.ndim != 1 or y.shape[0] != n:
        raise InputError(f"{path}: array {key!r} has shape {y.shape}; expected ({n},), one label per image")
    if y.size and int(y.min()) < 0:
        raise InputError(f"{path}: array {key!r} has negative labels")
    return y.astype(np.int64, copy=False)


@dataclass(frozen=True)
class NpzLayout:
    """The array names of one npz flavour: the train pair, the test pair, and whether a file
    holding only the train pair is evaluation data (plain ``npz:``: ``x``/``y`` are then the
    set to evaluate on) or needs its test pair (``cifar10:``: ``x_train`` is never test data)."""

    train: tuple[str, str]
    test: tuple[str, str]
    unsplit_is_eval: bool

    def accepted(self) -> str:
        """The one sentence every npz error ends with, so the messages agree."""
        (xk, yk), (tk, tyk) = self.train, self.test
        if self.unsplit_is_eval:
            return (
                f"accepted arrays: {xk!r} + {yk!r} (training data, or the evaluation set when there is no "
                f"test pair) and/or {tk!r} + {tyk!r} (the test split), optional 'classes'"
            )
        return (
            f"accepted arrays: {xk!r} + {yk!r} (train split) and/or {tk!r} + {tyk!r} (test split), optional 'classes'"
        )


NPZ_LAYOUT = NpzLayout(("x", "y"), ("x_test", "y_test"), unsplit_is_eval=True)
CIFAR10_NPZ_LAYOUT = NpzLayout(("x_train", "y_train"), ("x_test", "y_test"), unsplit_is_eval=False)


@dataclass(frozen=True)
class NpzSplit:
    """One split read from an npz file, validated."""

    x: np.ndarray
    y: np.ndarray
    x_stats: np.ndarray  # the images mean/std come from: the train split, else the evaluation set
    num_classes: int
    classes: tuple[str, ...]
    held_out: bool  # False: the test split is the file's unsplit x/y (an evaluation-only file)


def _npz_pair(npz: Any, path: Path, keys: tuple[str, str], layout: NpzLayout) -> bool:
    """Whether the file has the image/label pair ``keys``; half a pair is an error."""
    xk, yk = keys
    files = set(npz.files)
    present = f"arrays present: {', '.join(npz.files) or 'none'}; {layout.accepted()}"
    if xk in files and yk not in files:
        raise InputError(f"{path}: array {yk!r} missing: the images in {xk!r} need their labels ({present})")
    if yk in files and xk not in files:
        raise InputError(f"{path}: array {xk!r} missing: the labels in {yk!r} need their images ({present})")
    return xk in files


def _load_npz_arrays(path: Path, split: Split, layout: NpzLayout, uint8_nhwc: bool = False) -> NpzSplit:
    """The requested split of an npz file, validated.

    A file may hold the train pair, the test pair or both. With both, each split reads its
    own pair and mean/std come from the train pair. A file with only the test pair is
    evaluation-only (split ``test``; statistics from the test images). A file with only the
    train pair serves split ``train`` and, where ``layout.unsplit_is_eval``, also split
    ``test`` (then ``held_out`` is False: the caller must not mistake it for held-out data
    of a training run)."""
    npz = _open_npz(path)
    with npz:
        present = f"arrays present: {', '.join(npz.files) or 'none'}; {layout.accepted()}"
        has_train = _npz_pair(npz, path, layout.train, layout)
        has_test = _npz_pair(npz, path, layout.test, layout)
        (xk, yk), (tk, tyk) = layout.train, layout.test
        if not has_train and not has_test:
            raise InputError(f"{path}: no image arrays ({present})")
        if split == "train" and not has_train:
            raise InputError(
                f"{path}: split 'train' needs arrays {xk!r} and {yk!r}; this file holds only the test split, "
                f"which serves evaluation ({present})"
            )
        if split == "test" and not has_test and not layout.unsplit_is_eval:
            raise InputError(f"{path}: split 'test' needs arrays {tk!r} and {tyk!r} ({present})")
        pairs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name, (ik, lk), has in (("train", layout.train, has_train), ("test", layout.test, has_test)):
            if has:
                images = _check_images(_read_array(npz, path, ik), path, ik, uint8_nhwc)
                pairs[name] = (images, _check_labels(_read_array(npz, path, lk), images.shape[0], path, lk))
        if has_train and has_test and pairs["test"][0].shape[1:] != pairs["train"][0].shape[1:]:
            raise InputError(
                f"{path}: array {tk!r} has images of shape {pairs['test'][0].shape[1:]}, "
                f"{xk!r} {pairs['train'][0].shape[1:]}"
            )
        classes: tuple[str, ...] = ()
        if "classes" in npz.files:
            c = _read_array(npz, path, "classes")
            if c.dtype.kind not in "US" or c.ndim != 1:
                raise InputError(f"{path}: array 'classes' must be a 1-D string array, got {c.dtype} {c.shape}")
            classes = tuple(str(v) for v in c.tolist())
    num_classes = int(max(int(y.max()) for _, y in pairs.values() if y.size)) + 1
    if classes:
        if len(classes) < num_classes:
            raise InputError(
                f"{path}: array 'classes' names {len(classes)} classes but labels go up to {num_classes - 1}"
            )
        num_classes = len(classes)
    held_out = split == "train" or has_test
    x, y = pairs[split] if split in pairs else pairs["train"]
    x_stats = pairs["train"][0] if has_train else pairs["test"][0]
    return NpzSplit(x, y, x_stats, num_classes, classes, held_out)


def _from_arrays(name: str, split: Split, data: NpzSplit, size: int | None) -> ArrayDataset:
    mean, std = channel_mean_std(resize_images(data.x_stats, size))
    x = resize_images(data.x, size)
    return ArrayDataset(
        name,
        split,
        np.ascontiguousarray(x, dtype=np.float32),
        np.ascontiguousarray(data.y),
        data.num_classes,
        mean,
        std,
        data.classes,
        held_out=data.held_out,
    )


def _load_npz(path: Path, split: Split, size: int | None) -> ArrayDataset:
    return _from_arrays(f"npz:{path.name}", split, _load_npz_arrays(path, split, NPZ_LAYOUT), size)


# --------------------------------------------------------------------------- image folders

_GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}


def _read_image(path: Path, size: int) -> tuple[np.ndarray, bool]:
    """(H, W, 3) uint8 resized to size × size, and whether the file is a grey image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.draft("RGB", (size, size))  # JPEG: decode at a reduced scale, much faster for big photos
            grey = img.mode in _GREY_MODES
            rgb = img.convert("RGB").resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
            return np.asarray(rgb, dtype=np.uint8), grey
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path}: not a readable image ({exc})") from None


def _read_images(paths: list[Path], size: int) -> np.ndarray:
    if not paths:
        return np.zeros((0, 3, size, size), np.float32)
    workers = max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:  # PIL releases the GIL while decoding and resizing
        results = list(pool.map(lambda p: _read_image(p, size), paths, chunksize=32))
    arr = np.stack([r[0] for r in results])  # N, H, W, 3 uint8
    all_grey = all(r[1] for r in results)
    x = arr[..., :1] if all_grey else arr
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255.0)


@functools.lru_cache(maxsize=4)
def _imagefolder_arrays(root: str, size: int, mtime: float) -> dict[str, Any]:
    from trustflow.data.loaders.imagefolder import scan_imagefolder

    images, classes = scan_imagefolder(Path(root))
    class_id = {c: i for i, c in enumerate(classes)}
    splits = {img.split for img in images}
    if splits == {""}:
        y_all = np.array([class_id[img.label] for img in images], dtype=np.int64)
        train_idx, test_idx = stratified_split(y_all)
        by_split = {"train": [images[i] for i in train_idx], "test": [images[i] for i in test_idx]}
    else:
        if "train" not in splits:
            raise InputError(f"{root}: split folders {sorted(splits)} but no 'train' folder")
        test_name = next((s for s in TEST_SPLIT_NAMES if s in splits), None)
        if test_name is None:
            raise InputError(f"{root}: no test split folder (one of {', '.join(TEST_SPLIT_NAMES)})")
        by_split = {
            "train": [i for i in images if i.split == "train"],
            "test": [i for i in images if i.split == test_name],
        }
    x_all = _read_images([i.path for s in ("train", "test") for i in by_split[s]], size)
    n_train = len(by_split["train"])
    out: dict[str, Any] = {"classes": tuple(classes)}
    for s, sl in (("train", slice(0, n_train)), ("test", slice(n_train, None))):
        out[s] = (x_all[sl], np.array([class_id[i.label] for i in by_split[s]], dtype=np.int64))
    return out


def _load_imagefolder(root: Path, split: Split, size: int | None, name: str) -> ArrayDataset:
    size = 32 if size is None else int(size)
    if not root.is_dir():
        raise InputError(f"{root}: not a directory (an image folder is <root>/<class>/<image>)")
    # cache key: the folder tree's directory mtimes (a file added or removed changes its folder's)
    stamp = max(
        [root.stat().st_mtime]
        + [d.stat().st_mtime for d in root.glob("*/") if d.is_dir()]
        + [d.stat().st_mtime for d in root.glob("*/*/") if d.is_dir()]
    )
    data = _imagefolder_arrays(str(root.resolve()), size, stamp)
    x, y = data[split]
    if len(y) == 0:
        raise InputError(f"{root}: split {split!r} has no images")
    classes = data["classes"]
    mean, std = channel_mean_std(data["train"][0])
    return ArrayDataset(name, split, x, y, len(classes), mean, std, classes)


# --------------------------------------------------------------------------- Fashion-MNIST

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot",
)  # fmt: skip
_FASHION_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """An idx file (gzip): big-endian magic 0x0000080<ndim>, dims as uint32, then uint8 data."""
    import gzip

    if not path.is_file():
        raise InputError(
            f"{path}: file not found (Fashion-MNIST: apt-get install dataset-fashion-mnist, or make datasets)"
        )
    try:
        with gzip.open(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise InputError(f"{path}: not a readable gzip idx file ({exc})") from None
    header = 4 + 4 * ndim
    if len(raw) < header or raw[:2] != b"\0\0" or raw[2] != 0x08 or raw[3] != ndim:
        raise InputError(f"{path}: not an idx file of {ndim} dimensions (bad magic {raw[:4]!r})")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if len(raw) - header != int(np.prod(dims)):
        raise InputError(f"{path}: idx header says {dims}, the file holds {len(raw) - header} bytes of data")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


@functools.lru_cache(maxsize=2)
def _fashion_arrays(root: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = (Path(root) / f for f in _FASHION_FILES[split])
    x = _read_idx(images, 3)
    y = _read_idx(labels, 1).astype(np.int64)
    if x.shape[0] != y.shape[0]:
        raise InputError(f"{root}: {x.shape[0]} images but {y.shape[0]} labels in the {split} split")
    return (x[:, None].astype(np.float32) / np.float32(255.0)), y


def _load_fashion_mnist(root: Path, split: Split, size: int | None) -> ArrayDataset:
    x_train, _ = _fashion_arrays(str(root), "train")
    mean, std = channel_mean_std(resize_images(x_train, size))
    x, y = _fashion_arrays(str(root), split)
    name = "fashion-mnist" if size is None else f"fashion-mnist@{size}"
    return ArrayDataset(
        name, split, np.ascontiguousarray(resize_images(x, size)), y.copy(), 10, mean, std, FASHION_MNIST_CLASSES
    )


# --------------------------------------------------------------------------- CIFAR-10

_CIFAR_PICKLES = ("data_batch_1", "test_batch", "batches.meta")
CIFAR10_CONVERSION = (
    "python -c \"import pickle,numpy as n;L=lambda f:pickle.load(open(f,'rb'),encoding='bytes');"
    "t=[L(f'data_batch_{i}') for i in range(1,6)];e=L('test_batch');"
    "r=lambda d:d[b'data'].reshape(-1,3,32,32).transpose(0,2,3,1);"
    "n.savez('cifar10.npz',x_train=n.concatenate([r(d) for d in t]),y_train=n.concatenate([d[b'labels'] for d in t]),"
    "x_test=r(e),y_test=n.array(e[b'labels']))\""
)


def _load_cifar10(target: Path, split: Split, size: int | None) -> ArrayDataset:
    npz_path = target if target.suffix == ".npz" else target / "cifar10.npz"
    if npz_path.is_file():
        data = _load_npz_arrays(npz_path, split, CIFAR10_NPZ_LAYOUT, uint8_nhwc=True)
        if data.num_classes > 10:
            raise InputError(f"{npz_path}: labels go up to {data.num_classes - 1}; CIFAR-10 has 10 classes")
        data = dataclasses.replace(data, num_classes=10, classes=data.classes or CIFAR10_CLASSES)
        return _from_arrays("cifar10" if size is None else f"cifar10@{size}", split, data, size)
    if not target.is_dir():
        raise InputError(f"{target}: neither a directory nor a cifar10.npz file")
    for base in (target, target / "cifar-10-batches-py"):
        if any((base / name).exists() for name in _CIFAR_PICKLES):
            raise InputError(
                f"{base}: holds the python-pickle CIFAR-10 batches, which trustflow does not unpickle (a pickle can "
                f"run code when loaded). Convert once, where you trust the files, inside that folder: {CIFAR10_CONVERSION} "
                f"then use cifar10:{base}"
            )
    if (target / "train").is_dir():
        return _load_imagefolder(
            target, split, size if size is not None else 32, "cifar10" if size in (None, 32) else f"cifar10@{size}"
        )
    raise InputError(f"{target}: no cifar10.npz and no train/<class>/ image folders")


# --------------------------------------------------------------------------- entry point


DATASET_KINDS = ("digits", "fashion-mnist", "npz", "imagefolder", "cifar10")


class DatasetOptions(Options):
    target: str | None = None  # the file or folder of npz / imagefolder / cifar10


def load_dataset(spec: str, split: str = "test", size: int | None = None) -> ArrayDataset:
    """Load one split of a dataset spec (see the module docstring for the kinds); the spec is
    read by the registry's grammar (``kind[:PATH]``)."""
    split_ = _check_split(split)
    if size is not None and int(size) < 1:
        raise ConfigError(f"size must be >= 1, got {size}")
    parsed = parse_spec(spec, "dataset spec")
    if parsed.name not in DATASET_KINDS:
        raise ConfigError(
            f"unknown dataset spec {spec!r}; expected digits, fashion-mnist[:DIR], npz:PATH, imagefolder:DIR or cifar10:DIR"
        )
    target = validate_options(f"dataset {parsed.name!r}", DatasetOptions, parsed.options).target
    if parsed.name == "digits":
        if target is not None:
            raise ConfigError(f"dataset spec {spec!r}: digits takes no path")
        return _load_digits(split_, size)
    if parsed.name == "fashion-mnist":
        return _load_fashion_mnist(FASHION_MNIST_DIR if target is None else Path(target).expanduser(), split_, size)
    if target is None:
        raise ConfigError(f"dataset spec {spec!r}: {parsed.name} needs a path ({parsed.name}:PATH)")
    path = Path(target).expanduser()
    if parsed.name == "npz":
        return _load_npz(path, split_, size)
    if parsed.name == "imagefolder":
        return _load_imagefolder(path, split_, size, f"imagefolder:{path.name}" + ("" if size is None else f"@{size}"))
    return _load_cifar10(path, split_, size)


__all__ = ["ArrayDataset", "CIFAR10_CLASSES", "channel_mean_std", "load_dataset", "resize_images", "stratified_split"]
