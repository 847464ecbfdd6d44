"""Image-folder classification sets: ``<root>/<class>/*.png`` or ``<root>/<split>/<class>/*``.

Class names are the sorted folder names, so ``label_id`` is stable across machines.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from trustflow.errors import InputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
SPLIT_NAMES = {"train", "val", "valid", "validation", "test"}


@dataclass(frozen=True)
class FolderImage:
    path: Path
    relpath: str
    split: str
    label: str


def _confined(path: Path, real_root: Path) -> Path:
    """``path`` resolved; an ``InputError`` when a symlink takes it outside the folder (the
    ingest would read a file the dataset does not hold) or into a hidden file or folder
    there (which the dataset id, a fingerprint of the non-hidden files, does not cover)."""
    real = path.resolve()
    try:
        rel = real.relative_to(real_root)
    except ValueError:
        raise InputError(f"{path}: links to {real}, outside the image folder {real_root}") from None
    if any(part.startswith(".") for part in rel.parts):
        raise InputError(f"{path}: links to the hidden path {real}, which the dataset id does not cover")
    return real


def scan_imagefolder(root: Path) -> tuple[list[FolderImage], list[str]]:
    """All images and the sorted class list; split folders are detected by name."""
    if not root.is_dir():
        raise InputError(f"{root}: not a directory (an image folder is <root>/<class>/<image>)")
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subdirs:
        raise InputError(f"{root}: no class folders")
    is_split = all(p.name in SPLIT_NAMES for p in subdirs)  # <root>/<split>/<class>/<image>
    split_roots = [(p.name, p) for p in subdirs] if is_split else [("", root)]
    real_root = root.resolve()
    images: list[FolderImage] = []
    classes: set[str] = set()
    for split, split_root in split_roots:
        for class_dir in sorted(p for p in split_root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            classes.add(class_dir.name)
            for f in sorted(class_dir.rglob("*")):
                hidden = any(part.startswith(".") for part in f.relative_to(class_dir).parts)
                if f.is_file() and not hidden and f.suffix.lower() in IMAGE_SUFFIXES:
                    images.append(
                        FolderImage(_confined(f, real_root), f.relative_to(root).as_posix(), split, class_dir.name)
                    )
    if not images:
        raise InputError(f"{root}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under class folders")
    return images, sorted(classes)
