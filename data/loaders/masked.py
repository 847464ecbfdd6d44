"""Folders of images with object masks or object boxes (inputs of ``masked_objects``).

Two layouts:

* **mask files** (kind ``maskfolder``): ``<root>/<class>/<name>.<ext>`` with its mask
  ``<root>/<class>/<name>.mask.png`` beside it (optionally ``<root>/<split>/<class>/…``, as
  for ``imagefolder``). A mask is any image whose non-zero pixels are the object; it must
  have the image's size. An image without its mask, or a mask without its image, is an error.
* **boxes** (kind ``grabcut``): ``<root>/boxes.json``, a list of
  ``{"file": "<path under root>", "label": "<class>", "box": [x, y, w, h]}``; each box is
  refined into a mask with GrabCut (data/masked_objects.py) and recorded with it.

Paths must stay inside the folder (no absolute paths, ``..`` or symlinks out), as for the
other loaders: the dataset id only covers the folder's own files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from trustflow.data.loaders.imagefolder import scan_imagefolder
from trustflow.errors import InputError

MASK_SUFFIX = ".mask.png"
BOXES_FILE = "boxes.json"


@dataclass(frozen=True)
class MaskedFile:
    """An image, its mask (or box), its class and its id (the path without suffix)."""

    object_id: str
    label: str
    image: Path
    mask: Path | None = None
    box: tuple[float, float, float, float] | None = None


def scan_maskfolder(root: Path) -> list[MaskedFile]:
    """Every (image, mask) pair under ``root``; ``InputError`` naming an unpaired file."""
    files, _ = scan_imagefolder(root)
    masks = {f.relpath: f for f in files if f.relpath.lower().endswith(MASK_SUFFIX)}
    images = [f for f in files if not f.relpath.lower().endswith(MASK_SUFFIX)]
    used: set[str] = set()
    out = []
    for img in images:
        stem = img.relpath.rsplit(".", 1)[0]
        mask_rel = stem + MASK_SUFFIX
        if mask_rel not in masks:
            raise InputError(f"{root / img.relpath}: no mask file {Path(mask_rel).name} beside it")
        used.add(mask_rel)
        out.append(MaskedFile(stem, img.label, img.path, masks[mask_rel].path))
    orphans = sorted(set(masks) - used)
    if orphans:
        raise InputError(f"{root / orphans[0]}: a mask file without its image ({len(orphans)} such files)")
    if not out:
        raise InputError(f"{root}: no images with {MASK_SUFFIX} masks under class folders")
    return out


def _confined(root: Path, name: str, where: str) -> Path:
    real_root = root.resolve()
    path = (root / name).resolve()
    try:
        rel = path.relative_to(real_root)
    except ValueError:
        raise InputError(f"{where}: file {name!r} resolves outside the folder {root}") from None
    if any(part.startswith(".") for part in rel.parts):
        raise InputError(f"{where}: file {name!r} is hidden, which the dataset id does not cover")
    if not path.is_file():
        raise InputError(f"{where}: image file {path} not found")
    return path


def scan_boxes(root: Path) -> list[MaskedFile]:
    """The entries of ``<root>/boxes.json``, checked field by field (errors name the entry)."""
    doc_path = root / BOXES_FILE
    if not doc_path.is_file():
        raise InputError(f"{root}: no {BOXES_FILE} (a list of {{file, label, box: [x, y, w, h]}})")
    try:
        doc = json.loads(doc_path.read_bytes())
    except json.JSONDecodeError as exc:
        raise InputError(f"{doc_path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(doc, list) or not doc:
        raise InputError(f"{doc_path}: expected a non-empty list of {{file, label, box}} objects")
    out = []
    seen: set[str] = set()
    for i, entry in enumerate(doc):
        where = f"{doc_path}: [{i}]"
        if not isinstance(entry, dict):
            raise InputError(f"{where}: expected an object")
        for name in ("file", "label"):
            if not isinstance(entry.get(name), str) or not entry[name]:
                raise InputError(f"{where}: field {name!r} must be a non-empty string")
        box = entry.get("box")
        if not (
            isinstance(box, list)
            and len(box) == 4
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in box)
        ):
            raise InputError(f"{where}: field 'box' must be 4 numbers [x, y, w, h]")
        object_id = str(entry.get("id") or entry["file"].rsplit(".", 1)[0])
        if object_id in seen:
            raise InputError(f"{where}: duplicate object id {object_id!r} (give each box an 'id')")
        seen.add(object_id)
        x, y, w, h = (float(v) for v in box)
        out.append(MaskedFile(object_id, entry["label"], _confined(root, entry["file"], where), box=(x, y, w, h)))
    return out


__all__ = ["BOXES_FILE", "MASK_SUFFIX", "MaskedFile", "scan_boxes", "scan_maskfolder"]
