"""A store-backed cache of probe features, so experiments never extract a pair twice.

Features are keyed by (model, layer set, poolings) — the run id of a ``critic_features``
stage — and, inside the stage, by (``pair_hash``, ``layer``, ``pooling``), ``pair_hash``
being the hash of the judged (truncated) text. Each forward batch is written as one part
as soon as it is computed, so a killed extraction resumes after its last finished batch
(parts on storage count even before the manifest is written); the manifest is written when
a request completes. A request reads its own run and any committed run of the same model
whose layers and poolings include its own (so layer 14 alone reuses a 7..21 extraction).
A different truncation or pooling code bumps ``FEATURES_VERSION`` and lands in a new run,
never mixing with old vectors.

The same cache holds a second-stage LLM judge's answers (:func:`judge_score_cache`): one
float per pair (P(harmful)) as a 1-wide vector under layer 0 and a "pooling" naming the
judge prompt's hash, so re-running a benchmark asks the LLM nothing it has answered.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from trustflow import names
from trustflow.data.schemas import CRITIC_FEATURES
from trustflow.data.store import ArtifactStore, StageRef
from trustflow.models.critics.base import JudgeItem
from trustflow.models.critics.features import PROMPT_CHARS, RESPONSE_CHARS, Pooling, extract_features, pair_hash

log = logging.getLogger(__name__)

FEATURES_VERSION = "f1"
FEATURE_KEYS = ["pair_hash", "layer", "pooling"]
FeatureSet = dict[tuple[int, str], np.ndarray]


def feature_ref(model_spec: str, layers: Sequence[int], poolings: Sequence[str]) -> StageRef:
    """The stage caching ``model_spec``'s features at ``layers`` × ``poolings``."""
    ident = (
        f"{FEATURES_VERSION}|{model_spec}|{sorted(set(layers))}|{sorted(set(poolings))}|{PROMPT_CHARS}/{RESPONSE_CHARS}"
    )
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in model_spec)[:60]
    return StageRef(names.CRITIC_FEATURES, f"{safe}-{hashlib.sha256(ident.encode()).hexdigest()[:12]}", names.FEATURES)


class FeatureCache:
    """Features of (request, response) pairs for one model, layer set and poolings."""

    def __init__(
        self,
        store: ArtifactStore,
        model_spec: str,
        layers: Sequence[int],
        poolings: Sequence[Pooling],
        extractor: Callable[..., dict[tuple[int, str], np.ndarray]] = extract_features,
    ) -> None:
        self.extractor = extractor
        self.store = store
        self.model_spec = model_spec
        self.layers = sorted(set(layers))
        self.poolings = list(dict.fromkeys(poolings))
        self.ref = feature_ref(model_spec, self.layers, self.poolings)
        self.writer = store.writer(self.ref, CRITIC_FEATURES, FEATURE_KEYS)
        self.extract_seconds = 0.0
        self.extracted = 0

    def _superset_parts(self) -> list[str]:
        """Committed parts of other runs of this model whose layers and poolings include ours:
        a request for layer 14 reuses a run that extracted layers 7..21."""
        paths: list[str] = []
        for ref, manifest in self.store.list_stages(flow=names.CRITIC_FEATURES):
            a = manifest.attrs
            if (
                ref == self.ref
                or a.get("model") != self.model_spec
                or a.get("version") != FEATURES_VERSION
                or not set(self.layers) <= set(a.get("layers", []))
                or not set(self.poolings) <= set(a.get("poolings", []))
            ):
                continue
            paths += [self.store.path(ref.relpath, "parts", part.name) for part in manifest.parts]
        return paths

    def _stored(self, wanted: set[str]) -> dict[str, dict[tuple[int, str], np.ndarray]]:
        found: dict[str, dict[tuple[int, str], np.ndarray]] = {}
        own = [info.path for info in self.writer.part_files()]  # committed or not: a killed run's parts count
        combos = {(layer, p) for layer in self.layers for p in self.poolings}
        for path in own + self._superset_parts():
            table = pq.read_table(path, filesystem=self.store.fs)
            hashes = table["pair_hash"].to_pylist()
            keep = [i for i, h in enumerate(hashes) if h in wanted]
            if not keep:
                continue
            table = table.take(pa.array(keep))
            vectors = table["vector"].combine_chunks()
            width = len(vectors[0]) if len(vectors) else 0
            flat = vectors.values.to_numpy(zero_copy_only=False).reshape(-1, width)
            for row, (h, layer, pooling) in enumerate(
                zip(
                    table["pair_hash"].to_pylist(),
                    table["layer"].to_pylist(),
                    table["pooling"].to_pylist(),
                    strict=True,
                )
            ):
                if (int(layer), str(pooling)) in combos:  # a superset run holds more than we want
                    found.setdefault(h, {})[(int(layer), str(pooling))] = flat[row]
        return found

    def features(
        self, items: Sequence[JudgeItem], backend: Callable[[], Any], batch_size: int | None = None
    ) -> FeatureSet:
        """``{(layer, pooling): array (len(items), hidden)}``; only pairs missing from the
        cache are extracted (``backend()`` is called only then)."""
        hashes = [pair_hash(item) for item in items]
        stored = self._stored(set(hashes))
        combos = [(layer, p) for layer in self.layers for p in self.poolings]
        todo: dict[str, JudgeItem] = {}
        for h, item in zip(hashes, items, strict=True):
            if h not in todo and any(c not in stored.get(h, {}) for c in combos):
                todo[h] = item
        if todo:
            order = list(todo)
            model = backend()
            log.info("extracting features for %d pairs (%d cached)", len(order), len(set(hashes)) - len(order))

            def write(idx: list[int], rows: dict[tuple[int, str], np.ndarray]) -> None:
                cols: dict[str, list[Any]] = {"pair_hash": [], "layer": [], "pooling": [], "vector": []}
                for (layer, p), block in rows.items():
                    for j, i in enumerate(idx):
                        cols["pair_hash"].append(order[i])
                        cols["layer"].append(layer)
                        cols["pooling"].append(p)
                        cols["vector"].append(block[j])
                        stored.setdefault(order[i], {})[(layer, p)] = block[j]
                self.writer.write_part(
                    pa.table(
                        {
                            "pair_hash": cols["pair_hash"],
                            "layer": pa.array(cols["layer"], pa.int32()),
                            "pooling": cols["pooling"],
                            "vector": pa.array([v.tolist() for v in cols["vector"]], pa.list_(pa.float32())),
                        }
                    ),
                    uuid.uuid4().hex[:16],
                )

            t0 = time.perf_counter()
            self.extractor(model, [todo[h] for h in order], self.layers, self.poolings, batch_size, on_batch=write)
            self.extract_seconds += time.perf_counter() - t0
            self.extracted += len(order)
            attrs = {"model": self.model_spec, "layers": self.layers, "poolings": self.poolings}
            self.writer.commit({**attrs, "version": FEATURES_VERSION})
        return {c: np.stack([stored[h][c] for h in hashes]) if hashes else np.zeros((0, 0)) for c in combos}


def judge_score_cache(store: ArtifactStore, model_spec: str, few_shot: bool = True) -> FeatureCache:
    """A cache of ``prefilled_harmful_probabilities`` answers of ``model_spec`` (see module doc):
    ``cache.features(items, backend)[(0, cache.poolings[0])][:, 0]`` is P(harmful) per item."""
    from trustflow.models.critics.llm_judge import EXAMPLES, JUDGE_PREFILL, QUESTION, SYSTEM

    prompt = repr((SYSTEM, QUESTION, EXAMPLES if few_shot else None, JUDGE_PREFILL))
    key = (0, f"judge-{hashlib.sha256(prompt.encode()).hexdigest()[:10]}")

    def run(
        backend: Any,
        items: Sequence[JudgeItem],
        layers: Sequence[int],
        poolings: Sequence[str],
        batch_size: int | None = None,
        on_batch: Callable[[list[int], dict[tuple[int, str], np.ndarray]], None] | None = None,
    ) -> dict[tuple[int, str], np.ndarray]:
        from trustflow.models.critics.llm_judge import prefilled_harmful_probabilities

        blocks = []
        for start in range(0, len(items), 4):  # a part every 4 answers: a killed run keeps them
            chunk = list(items[start : start + 4])
            block = np.array(prefilled_harmful_probabilities(backend, chunk, few_shot), dtype=np.float32)[:, None]
            if on_batch is not None:
                on_batch(list(range(start, start + len(chunk))), {key: block})
            blocks.append(block)
        return {key: np.concatenate(blocks) if blocks else np.zeros((0, 1), dtype=np.float32)}

    return FeatureCache(store, model_spec, [0], [key[1]], extractor=run)  # type: ignore[list-item]
