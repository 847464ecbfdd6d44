"""Reversible encodings of a prompt for the instruction-encryption attack (Base64, URL
percent-encoding, a Caesar shift over ASCII letters and CJK ideographs); see
``instruction_encryption.py`` for what each does. ``decode(encode(s, e), e) == s``."""

from __future__ import annotations

import base64
import binascii
import urllib.parse

from trustflow.errors import ConfigError, InputError

ENCODINGS = ("base64", "url", "caesar")

CJK_FIRST = 0x4E00
CJK_LAST = 0x9FFF
CJK_SIZE = CJK_LAST - CJK_FIRST + 1


def caesar_shift(text: str, shift: int) -> str:
    """Shift ASCII letters (mod 26, per case) and CJK ideographs U+4E00–U+9FFF (mod 20,992)."""
    out = []
    for ch in text:
        o = ord(ch)
        if 97 <= o <= 122:
            out.append(chr((o - 97 + shift) % 26 + 97))
        elif 65 <= o <= 90:
            out.append(chr((o - 65 + shift) % 26 + 65))
        elif CJK_FIRST <= o <= CJK_LAST:
            out.append(chr((o - CJK_FIRST + shift) % CJK_SIZE + CJK_FIRST))
        else:
            out.append(ch)
    return "".join(out)


def parse_encoding(encoding: str) -> tuple[str, int]:
    """``"base64"`` → ("base64", 0); ``"caesar:3"`` → ("caesar", 3)."""
    kind, _, arg = encoding.partition(":")
    if kind in ("base64", "url") and not arg:
        return kind, 0
    if kind == "caesar":
        try:
            return kind, int(arg)
        except ValueError:
            pass
    raise ConfigError(f"unknown encoding {encoding!r}; known: base64, url, caesar:<shift>")


def encode(text: str, encoding: str) -> str:
    """Encode ``text`` as ``encoding`` (``base64``, ``url`` or ``caesar:<shift>``)."""
    kind, shift = parse_encoding(encoding)
    if kind == "base64":
        return base64.b64encode(text.encode("utf-8")).decode("ascii")
    if kind == "url":
        return urllib.parse.quote(text, safe="", encoding="utf-8", errors="strict")
    return caesar_shift(text, shift)


def decode(text: str, encoding: str) -> str:
    """Undo :func:`encode`: ``decode(encode(s, e), e) == s`` for every string ``s``."""
    kind, shift = parse_encoding(encoding)
    if kind == "base64":
        try:
            return base64.b64decode(text.encode("ascii"), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeError) as e:
            raise InputError(f"not valid Base64 of UTF-8 text: {e}") from None
    if kind == "url":
        try:
            return urllib.parse.unquote(text, encoding="utf-8", errors="strict")
        except UnicodeError as e:
            raise InputError(f"not valid URL encoding of UTF-8 text: {e}") from None
    return caesar_shift(text, -shift)
