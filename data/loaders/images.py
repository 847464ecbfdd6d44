"""Read an image file's bytes and check that it decodes, without keeping pixels around."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from trustflow.errors import InputError


@dataclass(frozen=True)
class ImageBlob:
    data: bytes
    width: int
    height: int
    sha256: str


def read_image(path: Path) -> ImageBlob:
    """Bytes, size and digest of an image file; corrupt or unreadable files name the path."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read image ({exc.strerror})") from None
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise InputError(f"{path}: not a readable image ({exc})") from None
    return ImageBlob(data=data, width=width, height=height, sha256=hashlib.sha256(data).hexdigest())
