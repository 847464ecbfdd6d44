"""Few-shot data: labelled image pools and k-shot episodes drawn from them by seed.

A *set* is two :class:`~trustflow.data.vision.datasets.ArrayDataset` splits: ``train`` (the
pool episodes draw their support and validation shots from) and ``test`` (the query images).
``load_fewshot_set(spec)`` accepts

    digits              scikit-learn digits (8×8 grey, 10 classes; the 80/20 split of
                        ``load_dataset``)
    fashion-mnist[:DIR] Debian's Fashion-MNIST idx files (28×28 grey, 10 classes)
    lfw-subset          scikit-image's ``lfw_subset``: 100 faces and 100 non-faces, 25×25 grey
                        (2 classes); a stratified 60/40 split, seed 0, so 16 shots + 4
                        validation shots per class fit in the pool
    imagefolder:DIR     ``DIR/<class>/*`` or ``DIR/train|test/<class>/*`` (the CoOp-style
                        datasets, for users who have them), images read at ``size`` (default 64)
    textile             ``conformal-clip-data``'s 2,000 simulated textile images (250×250 RGB,
                        3 classes nominal 1,000 / local 500 / global 500), read at ``size``; a
                        stratified 60/40 split, seed 0
    edits:FILE          an ImageNet-E style ``attribute_edits`` table exported to Parquet
                        (``export_edits``): the few-shot task is the edit set's own *originals*
                        (classes = its labels, sorted), split 60/40 by object (stratified, seed
                        0); the edited images of the test objects ride along as
                        ``FewShotSet.edits``, so each adapted model is also scored per attribute

Images otherwise stay at their own resolution: the backbone's trunk resizes them, so
corruptions and attacks act on the dataset's own pixels.

Episodes (:func:`make_episode`) are index arrays into the pool, deterministic in
``(set name, k, seed)``: per class, a permutation drawn from
``np.random.default_rng([seed, k, crc32(name)])`` gives the ``k`` support shots and then
``val_shots`` validation shots (disjoint from the support). The query set is the same for every
episode of a set (``query_indices``: ``n_query`` test images, drawn with seed 0), so accuracies
across methods, shots and seeds are paired. Why not ingest episodes into the store: they are
a few hundred integers over data that ships in packages; phase 2 writes per-episode result
rows, keyed by (method, set, k, seed), which is what resumes.
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trustflow.data.vision.datasets import ArrayDataset, channel_mean_std, load_dataset, stratified_split
from trustflow.errors import ConfigError
from trustflow.registry import parse_spec

SHOTS = (1, 2, 4, 8, 16)
VAL_SHOTS = 4
FEWSHOT_KINDS = ("digits", "fashion-mnist", "lfw-subset", "imagefolder", "textile", "edits")
TEXTILE_CLASSES = ("nominal", "local", "global")
EDIT_COLUMNS = ["edit_id", "object_id", "label", "attribute", "level", "image_png"]


@dataclass(frozen=True)
class EditedQueries:
    """The edited images of a set's test objects: ``x`` (N×3×S×S in [0, 1]), their labels
    ``y``, ``attribute`` per image, and ``query`` — the test index of the same object's
    original (so an episode keeps the edits of its own query objects)."""

    x: np.ndarray
    y: np.ndarray
    attribute: np.ndarray
    query: np.ndarray


@dataclass(frozen=True)
class FewShotSet:
    """A named pool (train split) and query source (test split)."""

    name: str
    train: ArrayDataset
    test: ArrayDataset
    edits: EditedQueries | None = None

    @property
    def num_classes(self) -> int:
        return self.train.num_classes


@dataclass(frozen=True)
class Episode:
    """One k-shot draw: indices into ``train`` (support, val) and ``test`` (query)."""

    set_name: str
    k: int
    seed: int
    support: np.ndarray
    val: np.ndarray
    query: np.ndarray

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.set_name, self.k, self.seed)


def _lfw_subset() -> FewShotSet:
    from skimage.data import lfw_subset

    x = lfw_subset().astype(np.float32)[:, None]  # 200, 1, 25, 25 in [0, 1]
    y = np.repeat(np.arange(2, dtype=np.int64), 100)  # the first 100 are faces
    return _split_set("lfw-subset", x, y, ("face", "non-face"))[0]


def _read_rgb(source: Any, size: int) -> np.ndarray:
    """An image file or bytes → 3×size×size float32 in [0, 1] (bilinear resize)."""
    from PIL import Image

    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as img:
        img.draft("RGB", (size, size))  # JPEG: decode at the nearest scale ≥ size (no-op otherwise)
        rgb = img.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(rgb, dtype=np.float32).transpose(2, 0, 1) / 255.0


def _split_set(name: str, x: np.ndarray, y: np.ndarray, classes: tuple[str, ...]) -> tuple[FewShotSet, np.ndarray]:
    """Stratified 60/40 split (seed 0), normalisation from the pool; also the test indices."""
    train, test = stratified_split(y, seed=0, test_fraction=0.4)
    mean, std = channel_mean_std(x[train])
    make = lambda split, idx: ArrayDataset(  # noqa: E731
        name, split, np.ascontiguousarray(x[idx]), y[idx].copy(), len(classes), mean, std, classes
    )
    return FewShotSet(name, make("train", train), make("test", test)), test


def _textile(size: int) -> FewShotSet:
    try:
        import conformal_clip_data
    except ImportError:
        raise ConfigError(
            "few-shot set 'textile' needs conformal-clip-data (requirements-nodeps.txt: pip install --no-deps)"
        ) from None
    root = Path(conformal_clip_data.textile_simulated_root())
    files = [(c, f) for c, cls in enumerate(TEXTILE_CLASSES) for f in sorted((root / cls).glob("*.jpg"))]
    x = np.stack([_read_rgb(f, size) for _, f in files])
    y = np.array([c for c, _ in files], dtype=np.int64)
    return _split_set("textile", x, y, TEXTILE_CLASSES)[0]


def edit_set_name(path: str) -> str:
    """``edits:<file stem>``: the set name of an exported edits file (episode RNG, row keys)."""
    return f"edits:{Path(path).stem}"


def _edits(path: str, size: int) -> FewShotSet:
    import pyarrow.parquet as pq

    if not Path(path).is_file():
        raise ConfigError(f"few-shot set 'edits:{path}': no such file")
    try:
        table = pq.read_table(path, columns=EDIT_COLUMNS).sort_by("edit_id")
    except Exception as exc:  # noqa: BLE001 - a foreign file is the input's problem
        raise ConfigError(f"few-shot set 'edits:{path}': not an attribute_edits table ({exc})") from None
    rows = table.to_pylist()
    originals = {r["object_id"]: r for r in rows if r["attribute"] == "original"}
    if not originals:
        raise ConfigError(f"few-shot set 'edits:{path}': no 'original' rows (the few-shot task is the originals)")
    classes = tuple(sorted({r["label"] for r in originals.values()}))
    objects = sorted(originals)
    x = np.stack([_read_rgb(originals[o]["image_png"], size) for o in objects])
    y = np.array([classes.index(originals[o]["label"]) for o in objects], dtype=np.int64)
    data, test = _split_set(edit_set_name(path), x, y, classes)
    at = {objects[i]: j for j, i in enumerate(test)}
    edited = [r for r in rows if r["attribute"] != "original" and r["object_id"] in at]
    edits = EditedQueries(
        x=np.stack([_read_rgb(r["image_png"], size) for r in edited])
        if edited
        else np.zeros((0, 3, size, size), np.float32),
        y=np.array([classes.index(r["label"]) for r in edited], dtype=np.int64),
        attribute=np.array([r["attribute"] for r in edited], dtype=str),
        query=np.array([at[r["object_id"]] for r in edited], dtype=np.int64),
    )
    return FewShotSet(data.name, data.train, data.test, edits)


def load_fewshot_set(spec: str, size: int = 64) -> FewShotSet:
    """The pool and query splits a set spec names (kinds in the module docstring)."""
    parsed = parse_spec(spec, "few-shot set spec")
    if parsed.name not in FEWSHOT_KINDS:
        raise ConfigError(f"unknown few-shot set {spec!r}; known: {', '.join(FEWSHOT_KINDS)}")
    extra = sorted(set(parsed.options) - {"target"})
    if extra:
        raise ConfigError(f"few-shot set {spec!r}: unknown option {extra[0]!r}")
    target = parsed.target
    if parsed.name == "lfw-subset":
        if target:
            raise ConfigError(f"few-shot set {spec!r}: lfw-subset takes no path")
        return _lfw_subset()
    if parsed.name == "textile":
        if target:
            raise ConfigError(f"few-shot set {spec!r}: textile takes no path")
        return _textile(size)
    if parsed.name == "edits":
        if not target:
            raise ConfigError(f"few-shot set {spec!r}: edits needs an exported file (edits:FILE.parquet)")
        return _edits(target, size)
    if parsed.name == "imagefolder":
        if not target:
            raise ConfigError(f"few-shot set {spec!r}: imagefolder needs a folder (imagefolder:DIR)")
        data_spec, name = f"imagefolder:{target}", f"imagefolder:{Path(target).name}"
        return FewShotSet(name, load_dataset(data_spec, "train", size), load_dataset(data_spec, "test", size))
    if parsed.name == "digits" and target:
        raise ConfigError(f"few-shot set {spec!r}: digits takes no path")
    data_spec = parsed.name if not target else f"{parsed.name}:{target}"
    return FewShotSet(parsed.name, load_dataset(data_spec, "train"), load_dataset(data_spec, "test"))


def _rng(*parts: int | str) -> np.random.Generator:
    return np.random.default_rng([zlib.crc32(p.encode()) if isinstance(p, str) else int(p) for p in parts])


def query_indices(data: FewShotSet, n_query: int | None = 500) -> np.ndarray:
    """The query images of every episode of ``data``: ``n_query`` test indices (all when None
    or when the test split is smaller), sorted, drawn with a fixed seed."""
    n = len(data.test.y)
    if n_query is None or n_query >= n:
        return np.arange(n)
    if n_query < 1:
        raise ConfigError(f"n_query must be >= 1, got {n_query}")
    return np.sort(_rng(0, "query", data.name).choice(n, size=n_query, replace=False))


def make_episode(data: FewShotSet, k: int, seed: int, val_shots: int = VAL_SHOTS, n_query: int | None = 500) -> Episode:
    """A k-shot episode (support and validation indices per class, the set's query indices)."""
    if k < 1:
        raise ConfigError(f"shots must be >= 1, got {k}")
    if val_shots < 1:
        raise ConfigError(f"val_shots must be >= 1, got {val_shots}")
    rng = _rng(seed, k, data.name)
    support: list[np.ndarray] = []
    val: list[np.ndarray] = []
    y = data.train.y
    for c in range(data.num_classes):
        pool = np.flatnonzero(y == c)
        if len(pool) < k + val_shots:
            raise ConfigError(
                f"{data.name}: class {c} has {len(pool)} training images, {k} shots + {val_shots} validation need more"
            )
        order = rng.permutation(pool)
        support.append(order[:k])
        val.append(order[k : k + val_shots])
    return Episode(
        data.name, int(k), int(seed), np.concatenate(support), np.concatenate(val), query_indices(data, n_query)
    )


__all__ = [
    "EDIT_COLUMNS",
    "FEWSHOT_KINDS",
    "EditedQueries",
    "SHOTS",
    "VAL_SHOTS",
    "Episode",
    "FewShotSet",
    "edit_set_name",
    "load_fewshot_set",
    "make_episode",
    "query_indices",
]
