"""Apply domain shifts to images and to whole COCO-format sets (a synthetic COCO-O tree).

Domains are named by strings so that configs and CLIs can list them:

* a ``DOMAIN_SHIFTS`` name (``sketch``, ``cartoon``, ``painting``, ``weather``, ``handmake``,
  ``tattoo``): a COCO-O-like style;
* ``corruption:<name>:<severity>``: a COCO-C style corruption (ImageNet-C's 15 at severity
  1..5, from ``trustflow.tasks.robustness.corruptions``);
* ``original``: the unchanged images (the in-distribution reference).

``expand_domains`` turns short specs ("all", "coco-c", "coco-c:3", comma lists) into names.

Reproducibility: image ``image_id`` of domain ``d`` draws from
``default_rng([seed, crc32(d), image_id])`` (corruptions: ``corrupt(..., seed, start_index=
image_id)``), so a set shifts identically whatever the order, batching or worker count.

``make_shifted_set`` writes the COCO-O layout that ``load_coco`` reads:
``<out_root>/<domain dir>/<split>/<file_name>`` and
``<out_root>/<domain dir>/annotations/instances_<split>.json`` with the source's images,
annotations and categories unchanged (the shifts keep size and geometry, so the boxes stay
exact). Each domain is built under ``<out_root>/.partial/`` and renamed into place when
complete, so a domain folder that exists is complete and a rerun skips it; ``.partial`` is
one level too deep for ``load_coco`` to mistake a half-written domain for a finished one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import zlib
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from trustflow.data.loaders.coco import CocoImage, CocoSplit, load_coco
from trustflow.errors import ConfigError, InputError
from trustflow.tasks.detection.shifts import COCO_O_DOMAINS, DOMAIN_SHIFTS
from trustflow.tasks.robustness.corruptions import ALL_CORRUPTIONS, CORRUPTIONS, SEVERITIES, corrupt

ORIGINAL = "original"
CORRUPTION_PREFIX = "corruption:"
PARTIAL_DIR = ".partial"
SEVERITY_NAMES = tuple(str(s) for s in SEVERITIES)  # exactly "1".."5": one spelling, one folder name
MARKER = "shift.json"  # inside each finished domain folder: what made it (checked on resume)


# --------------------------------------------------------------------------- domain names


def parse_domain(domain: str) -> tuple[str, int]:
    """(shift or corruption name, severity; 0 for styles and ``original``), validated."""
    if not isinstance(domain, str):
        raise ConfigError(f"domain must be a string, got {domain!r}")
    if domain == ORIGINAL or domain in DOMAIN_SHIFTS:
        return domain, 0
    if domain.startswith(CORRUPTION_PREFIX):
        parts = domain.split(":")
        if len(parts) != 3:
            raise ConfigError(f"domain {domain!r}: a corruption is written corruption:<name>:<severity>")
        _, name, severity = parts
        if name not in CORRUPTIONS:
            raise ConfigError(f"domain {domain!r}: unknown corruption {name!r}; known: {', '.join(ALL_CORRUPTIONS)}")
        if severity not in SEVERITY_NAMES:
            raise ConfigError(f"domain {domain!r}: corruption severity must be one of 1..5, got {severity!r}")
        return name, int(severity)
    known = ", ".join([ORIGINAL, *DOMAIN_SHIFTS.names()])
    raise ConfigError(f"unknown domain {domain!r}; known: {known}, or corruption:<name>:<severity>")


def domain_dirname(domain: str) -> str:
    """Folder name of a domain in the output tree (no colons: ``corruption-fog-3``)."""
    parse_domain(domain)
    return domain.replace(":", "-")


def _expand_one(spec: str) -> list[str]:
    spec = spec.strip()
    if spec == "all":
        return list(COCO_O_DOMAINS)
    if spec == "coco-c":
        return [f"{CORRUPTION_PREFIX}{n}:{s}" for n in ALL_CORRUPTIONS for s in SEVERITIES]
    if spec.startswith("coco-c:"):
        severity = spec.removeprefix("coco-c:")
        if severity not in SEVERITY_NAMES:
            raise ConfigError(f"domain spec {spec!r}: severity must be one of 1..5, got {severity!r}")
        return [f"{CORRUPTION_PREFIX}{n}:{int(severity)}" for n in ALL_CORRUPTIONS]
    parse_domain(spec)
    return [spec]


def expand_domains(spec: str | Sequence[str]) -> list[str]:
    """Domain names from ``"all"`` (COCO-O's six), ``"coco-c"`` (15 × 5), ``"coco-c:<s>"`` (15 at
    severity s), a comma list of any of these and domain names, or a sequence of such strings.
    Duplicates are dropped, first occurrence kept."""
    items = spec.split(",") if isinstance(spec, str) else [p for item in spec for p in str(item).split(",")]
    out: list[str] = []
    for item in items:
        if not item.strip():
            continue
        for name in _expand_one(item):
            if name not in out:
                out.append(name)
    if not out:
        raise ConfigError(f"no domains in {spec!r}; use e.g. 'all', 'coco-c:3' or 'sketch,weather'")
    return out


# --------------------------------------------------------------------------- one image


def shift_image(img: np.ndarray, domain: str, seed: int, image_id: int) -> np.ndarray:
    """The image (H×W×3 uint8 RGB) in ``domain``; same shape and dtype, deterministic."""
    name, severity = parse_domain(domain)
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"shift_image needs an H×W×3 uint8 RGB image, got {img.dtype} {img.shape}")
    if image_id < 0 or seed < 0:
        raise ValueError(f"seed and image_id must be non-negative, got {seed}, {image_id}")
    if name == ORIGINAL:
        return img.copy()
    if severity:
        x = img.astype(np.float32).transpose(2, 0, 1)[None] / 255.0
        y = corrupt(x, name, severity, seed=int(seed), start_index=int(image_id))
        return np.clip(np.rint(y[0].transpose(1, 2, 0) * 255.0), 0, 255).astype(np.uint8)
    rng = np.random.default_rng([int(seed), zlib.crc32(domain.encode()), int(image_id)])
    out = DOMAIN_SHIFTS.get(name)(np.ascontiguousarray(img), rng)
    if out.shape != img.shape or out.dtype != np.uint8:  # a bug in a shift, not a user error
        raise RuntimeError(f"domain shift {name} returned {out.dtype} {out.shape} for {img.dtype} {img.shape}")
    return out


# --------------------------------------------------------------------------- whole sets


def _read_rgb(image: CocoImage, json_path: Path) -> tuple[np.ndarray, str | None]:
    """Pixels as H×W×3 uint8 RGB and the file's PIL format; the size must match the JSON."""
    try:
        with Image.open(image.path) as pil:
            fmt = pil.format
            rgb = np.asarray(pil.convert("RGB"))
    except OSError as exc:
        raise InputError(f"{json_path}: image {image.image_id}: cannot read {image.path} ({exc})") from None
    if rgb.shape[:2] != (image.height, image.width):
        raise InputError(
            f"{json_path}: image {image.image_id}: fields 'width'/'height' say {image.width}x{image.height} "
            f"but {image.path} is {rgb.shape[1]}x{rgb.shape[0]}; boxes would not match the pixels"
        )
    return rgb, fmt


def _shift_file(job: tuple[CocoImage, Path, Path, str, int]) -> None:
    image, json_path, dest, domain, seed = job
    rgb, fmt = _read_rgb(image, json_path)
    out = Image.fromarray(shift_image(rgb, domain, seed, image.image_id))
    dest.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "JPEG":
        out.save(dest, format="JPEG", quality=95)  # a high quality, so the shift is not also a JPEG corruption
    else:
        out.save(dest, format=fmt)  # None: PIL picks the format from the extension


def _worker_init() -> None:
    cv2.setNumThreads(1)  # processes already use the cores; OpenCV's own threads would oversubscribe


def _write_domain(
    splits: list[CocoSplit], tmp: Path, domain: str, seed: int, pool: ProcessPoolExecutor | None, workers: int
) -> None:
    for split in splits:
        jobs = [(im, split.json_path, tmp / split.split / im.file_name, domain, seed) for im in split.images]
        if domain == ORIGINAL:
            for im, _, dest, _, _ in jobs:
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(im.path, dest)
        elif pool is None:
            for job in jobs:
                _shift_file(job)
        else:
            list(pool.map(_shift_file, jobs, chunksize=max(1, len(jobs) // (8 * workers))))
        (tmp / split.split).mkdir(parents=True, exist_ok=True)  # a split with no images still has its folder
    # annotations last: the source documents unchanged (same boxes, ids and categories)
    (tmp / "annotations").mkdir(parents=True, exist_ok=True)
    for split in splits:
        shutil.copyfile(split.json_path, tmp / "annotations" / split.json_path.name)
    (tmp / MARKER).write_text(json.dumps({"domain": domain, "seed": _marker_seed(domain, seed)}, indent=1))


def _marker_seed(domain: str, seed: int) -> int | None:
    return None if domain == ORIGINAL else seed  # the original copy is the same for every seed


def _check_finished(final: Path, domain: str, seed: int) -> None:
    """A finished domain folder must have been made with the same domain and seed."""
    try:
        made = json.loads((final / MARKER).read_text())
    except (OSError, json.JSONDecodeError):
        raise ConfigError(f"{final} exists but was not written by make_shifted_set (no {MARKER}); move it") from None
    if made.get("domain") != domain or made.get("seed") != _marker_seed(domain, seed):
        raise ConfigError(
            f"{final} was made with domain {made.get('domain')!r}, seed {made.get('seed')!r}, not {domain!r}, seed "
            f"{seed}; delete it or choose another output folder"
        )


def make_shifted_set(
    source_root: Path,
    out_root: Path,
    domains: str | Sequence[str],
    seed: int = 0,
    workers: int = 1,
    include_original: bool = True,
) -> Path:
    """Write a COCO-O style tree of ``domains`` (see ``expand_domains``) made from the plain
    COCO set at ``source_root``; returns ``out_root``. Finished domains are skipped."""
    source_root, out_root = Path(source_root), Path(out_root)
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    names = expand_domains(domains)
    if include_original and ORIGINAL not in names:
        names.insert(0, ORIGINAL)
    if out_root.resolve() == source_root.resolve():
        raise ConfigError(f"the output folder {out_root} is the source set itself; choose another")
    splits = load_coco(source_root)
    nested = sorted({s.domain for s in splits if s.domain})
    if nested:
        raise InputError(f"{source_root}: already a COCO-O tree (domains {', '.join(nested)}); pass one plain COCO set")

    out_root.mkdir(parents=True, exist_ok=True)
    todo = []
    for domain in names:
        final = out_root / domain_dirname(domain)
        if final.exists():
            _check_finished(final, domain, seed)
        else:
            todo.append(domain)
    if not todo:
        return out_root

    partial_root = out_root / PARTIAL_DIR
    pool = ProcessPoolExecutor(workers, initializer=_worker_init) if workers > 1 else None
    try:
        for domain in todo:
            tmp = partial_root / domain_dirname(domain)
            if tmp.exists():
                shutil.rmtree(tmp)  # left by an interrupted run
            tmp.mkdir(parents=True)
            _write_domain(splits, tmp, domain, seed, pool, workers)
            os.replace(tmp, out_root / domain_dirname(domain))
    finally:
        if pool is not None:
            pool.shutdown()
    with contextlib.suppress(OSError):  # not empty: something else lives there; leave it
        partial_root.rmdir()
    return out_root


# --------------------------------------------------------------------------- preview


def shift_grid_png(image: np.ndarray, domains: str | Sequence[str], out_path: Path, seed: int = 0) -> Path:
    """A labelled grid: the original, then ``image`` in each domain (image id 0); returns ``out_path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = [ORIGINAL] + [d for d in expand_domains(domains) if d != ORIGINAL]
    panels = [shift_image(image, d, seed, 0) for d in names]
    cols = min(4, len(panels))
    rows = -(-len(panels) // cols)
    h, w = image.shape[:2]
    panel_w = 3.2
    fig = Figure(figsize=(cols * panel_w, rows * (panel_w * h / w + 0.35)), dpi=110)
    FigureCanvasAgg(fig)
    for i, (name, panel) in enumerate(zip(names, panels, strict=True)):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(panel)
        ax.set_title(name, fontsize=10)
        ax.set_axis_off()
    fig.tight_layout()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, format="png")
    return out_path


__all__ = [
    "ORIGINAL",
    "domain_dirname",
    "expand_domains",
    "make_shifted_set",
    "parse_domain",
    "shift_grid_png",
    "shift_image",
]
