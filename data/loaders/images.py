"""Read an image file's bytes and check that it decodes, without keeping pixels around."""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from trustflow.errors import InputError

_BUFFER_REPR = re.compile(r"<_io\.BytesIO object at 0x[0-9a-fA-F]+>")


def _head(data: bytes) -> str:
    """What the file starts with, for the error: empty, or its first bytes."""
    return "the file is empty" if not data else f"it starts with {data[:8]!r}"


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
    except UnidentifiedImageError:
        # PIL's own text names the in-memory buffer (<_io.BytesIO object at 0x…>), not the file
        raise InputError(f"{path}: not a readable image (not a format PIL recognises: {_head(data)})") from None
    except (OSError, SyntaxError) as exc:
        detail = _BUFFER_REPR.sub("the file", str(exc)) or type(exc).__name__
        raise InputError(f"{path}: not a readable image ({detail})") from None
    return ImageBlob(data=data, width=width, height=height, sha256=hashlib.sha256(data).hexdigest())
