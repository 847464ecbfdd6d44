"""The phone inventory the CTC models predict, and espeak-ng as the grapheme-to-phoneme source.

Why IPA symbols one character at a time: espeak-ng's ``--ipa`` output is the only offline,
dependency-free phonemizer here (``phonemizer`` wraps the same binary; ``g2p_en`` downloads at
import), and splitting it per symbol gives a fixed, small inventory with no hand-made digraph
table to keep in sync. Stress marks (ˈ ˌ) and tie bars are dropped (they are not acoustic
units a small model can learn from a few hours); the length mark ː stays a token of its own;
``|`` marks a word boundary so the lexicon decoder can split words. Index 0 is the CTC blank.

Targets are phonemized word by word (one espeak-ng call per batch of words, one word a
line): espeak merges function words in running text ("in the" -> ɪnðə), which would leave no
word boundary for the decoder. The PER is therefore over these per-word IPA symbols.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Final

from trustflow.errors import ConfigError

BLANK: Final = "<b>"
WORD: Final = "|"
# every symbol espeak-ng 1.51 writes for the English voices (en-us, en-gb and their accents)
_IPA: Final = "abdefhijklmnoprstuvwxzæçðŋɐɑɒɔəɚɛɜɡɪɫɬɹɾʃʊʌʒʔθᵻʲɟcyøœɣʎɲʁχβ"
PHONES: Final[tuple[str, ...]] = (BLANK, WORD, "ː", *_IPA)
PHONE_INDEX: Final[dict[str, int]] = {p: i for i, p in enumerate(PHONES)}
_DROP = re.compile(r"[ˈˌ͡‍-]")
_WORD_RE = re.compile(r"[a-z0-9']+")


def normalise_text(text: str) -> str:
    """Lower case, words of letters/digits/apostrophes only (the WER compares these)."""
    return " ".join(_WORD_RE.findall(text.lower()))


def split_ipa(ipa: str) -> list[str]:
    """One word's espeak IPA -> phone symbols (stress dropped, unknown symbols dropped)."""
    return [ch for ch in _DROP.sub("", ipa) if ch in PHONE_INDEX and ch != WORD]


def espeak_binary() -> str:
    path = shutil.which("espeak-ng")
    if path is None:
        raise ConfigError("espeak-ng not found; install it with `make speech` (Debian package espeak-ng)")
    return path


@lru_cache(maxsize=65536)
def _word_ipa_cached(word: str, voice: str) -> str:
    return phonemize_words([word], voice)[0]


def phonemize_words(words: Sequence[str], voice: str = "en-us") -> list[str]:
    """IPA of each word (one espeak-ng call; one word a line keeps them apart)."""
    if not words:
        return []
    out = subprocess.run(
        [espeak_binary(), "-q", "--ipa", "-v", voice, "--stdin"],
        input="\n".join(words) + "\n",
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    if len(lines) != len(words):  # espeak joined or split a line: fall back to one call per word
        return [_word_ipa_cached(w, voice) if len(words) > 1 else " ".join(lines) for w in words]
    return lines


def lexicon_for(words: Iterable[str], voice: str = "en-us") -> dict[str, tuple[str, ...]]:
    """word -> its phone symbols, for every distinct normalised word."""
    distinct = sorted({w for w in words if w})
    return {w: tuple(split_ipa(ipa)) for w, ipa in zip(distinct, phonemize_words(distinct, voice), strict=True)}


def phones_for(text: str, lexicon: dict[str, tuple[str, ...]]) -> list[str]:
    """A transcript's phone sequence: the words' phones joined by ``|``."""
    seq: list[str] = []
    for i, word in enumerate(normalise_text(text).split()):
        if i:
            seq.append(WORD)
        seq.extend(lexicon[word])
    return seq


def encode(phones: Sequence[str]) -> list[int]:
    return [PHONE_INDEX[p] for p in phones]


def decode(ids: Iterable[int]) -> list[str]:
    return [PHONES[i] for i in ids]
