"""Critic quality on human labels (issue 13): every critic and variant side by side.

One row per critic/variant: leave-one-source-out (LOSO) balanced accuracy on each PyRIT
harm source (a source = one harm category; a trainable critic is trained on every *other*
source, its threshold chosen on those training sources only), their mean and worst, recall
of unsafe at precision >= 0.80 over the pooled held-out scores, and pairs/s on this
machine. The project's LLM-written sets are reported beside (the held-out
``written:critic_holdout``), never averaged in. PyRIT's ``objective/`` set is not read.

Features come from the store's feature cache (``tasks/seval/critic_features.py``): a
re-run extracts nothing, a killed one resumes. Pairs are a deterministic, label-balanced
sample of up to ``--per-source`` per source (ids written to ``--out``/sample_ids.json).

usage: nice -n 10 benchmarks/critic_quality.py [--per-source 36] [--phase all|extract|evaluate]
       [--model pkg:qwen2.5-1.5b] [--layers 7,10,14,18,21] [--no-written] [--no-timing]
       [--second-stage-budget 0.25] [--judge-model pkg:qwen2.5-1.5b|none] [--store URL] [--out DIR] [--json]

Rows added in the second round: concatenated layers, per-(source, class) weights, C by
inner CV, an MLP head, the refusal detector stacked or as a rule, and an LLM judge on the
scores within delta of the threshold (delta: the widest band holding at most the budget of
the training rows; the judge's answers cached in the store like the features).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

from trustflow.data.seval.labels import LabelRecord, pyrit_label_records, written_label_records  # noqa: E402
from trustflow.data.store import ArtifactStore  # noqa: E402
from trustflow.settings import load_settings  # noqa: E402
from trustflow.tasks.seval.critic_features import FeatureCache  # noqa: E402
from trustflow.tasks.seval.label_sources import judge_item, sample_records  # noqa: E402

LAYERS = (7, 10, 14, 18, 21)  # of Qwen2.5-1.5B's 28; 14 (= n // 2) is the shipped head's; 22 of 28 layers run
POOLINGS = ("mean", "last", "max")
log = logging.getLogger("critic_quality")


def sample(per_source: int, written: bool = True) -> list[LabelRecord]:
    # the refusal-scorer set (refusals only: specificity) is left for a later round: CPU budget
    return sample_records(pyrit_label_records("harm"), per_source) + (written_label_records() if written else [])


def extract(
    records: list[LabelRecord],
    model: str,
    store: ArtifactStore,
    batch_size: int | None,
    layers: tuple[int, ...] = LAYERS,
    time_it: bool = True,
) -> dict[str, float]:
    """Fill the feature cache for ``records``; with ``time_it``, first times
    one-pair-per-forward vs batched on 16 pairs (minutes on a busy machine)."""
    from trustflow.models.critics.features import extract_features
    from trustflow.models.llm.spec import load_backend

    cache = FeatureCache(store, model, layers, POOLINGS)  # type: ignore[arg-type]
    backend_box: list[object] = []

    def backend() -> object:
        if not backend_box:
            t0 = time.perf_counter()
            backend_box.append(load_backend(model))
            log.info("model %s loaded in %.0f s", model, time.perf_counter() - t0)
        return backend_box[0]

    items = [judge_item(r) for r in records]
    speed: dict[str, float] = {}
    probe = [items[i] for i in range(0, len(items), max(1, len(items) // 16))][:16]  # every source
    if time_it:
        extract_features(backend(), probe[:2], [14], ["mean"], 1)  # warm-up: the first forward is slow
    for name, kwargs in (
        ("one_per_forward_full_model", {"batch_size": 1, "truncate": False}),
        ("one_per_forward_to_layer_14", {"batch_size": 1}),
        ("batch_4_to_layer_14", {"batch_size": 4}),
        (
            f"one_per_forward_to_layer_{max(layers)}_all_poolings",
            {"batch_size": 1, "layers": layers, "poolings": POOLINGS},
        ),
    ):
        if not time_it:
            break
        kw: dict[str, Any] = {"layers": [14], "poolings": ["mean"], **kwargs}
        t0 = time.perf_counter()
        extract_features(backend(), probe, kw.pop("layers"), kw.pop("poolings"), **kw)
        speed[f"pairs_per_s_{name}"] = len(probe) / (time.perf_counter() - t0)
    log.info("speed %s", speed)
    by_source: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        by_source.setdefault(r.source, []).append(i)
    done = 0
    for source, idx in by_source.items():  # one source at a time: a cut-short run leaves whole sources
        cache.features([items[i] for i in idx], backend, batch_size)
        done += len(idx)
        log.info(
            "features: %s done, %d/%d pairs (%d extracted, %.0f s)",
            source,
            done,
            len(items),
            cache.extracted,
            cache.extract_seconds,
        )
    if cache.extracted:
        speed["pairs_per_s_extraction"] = cache.extracted / cache.extract_seconds
    return speed


def _judge(store: ArtifactStore, model: str, speed: dict[str, float], speed_path: Path) -> Any:
    """P(harmful) from the LLM judge (one forward each, cached in the store); records its speed."""
    from trustflow.models.llm.spec import load_backend
    from trustflow.tasks.seval.critic_features import judge_score_cache

    cache = judge_score_cache(store, model)

    def judge(items: list[Any]) -> list[float]:
        if not items:
            return []
        out = cache.features(items, lambda: load_backend(model))[(0, cache.poolings[0])][:, 0]
        if cache.extracted:
            speed["pairs_per_s_judge"] = cache.extracted / cache.extract_seconds
            speed_path.write_text(json.dumps(speed, indent=1))
            log.info("LLM judge: %d answers in %.0f s", cache.extracted, cache.extract_seconds)
        return [float(v) for v in out]

    return judge


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-source", type=int, default=36)
    ap.add_argument("--phase", choices=("all", "extract", "evaluate"), default="all")
    ap.add_argument("--model", default="pkg:qwen2.5-1.5b")
    ap.add_argument(
        "--layers",
        default=",".join(map(str, LAYERS)),
        help="Layers to extract (comma list; a subset of a cached run reuses it). 7,10,14 stops the forward at 14.",
    )
    ap.add_argument(
        "--no-written",
        action="store_true",
        help="Human PyRIT pairs only (no LLM-written sets: a third less to extract).",
    )
    ap.add_argument("--judge-model", default="pkg:qwen2.5-1.5b", help="Second-stage LLM judge ('none': no such row).")
    ap.add_argument(
        "--second-stage-budget",
        type=float,
        default=0.25,
        help="Most of the training rows the uncertainty band may hold (chooses delta per fold); 0: no second stage.",
    )
    ap.add_argument("--no-timing", action="store_true", help="Skip the speed probe of the extract phase.")
    ap.add_argument("--batch-size", type=int, default=None, help="Default: 1 on CPU, 8 on a GPU.")
    ap.add_argument("--store", default=None, help="Store URL for the feature cache (default: the configured store).")
    ap.add_argument("--out", type=Path, default=Path("out/critic_quality"))
    ap.add_argument("--json", action="store_true", help="Print the result rows as JSON instead of tables.")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    settings = load_settings()
    store = ArtifactStore(args.store or settings.effective_store_url, settings)
    layers = tuple(sorted({int(v) for v in args.layers.split(",") if v.strip()}))
    records = sample(args.per_source, not args.no_written)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sample_ids.json").write_text(
        json.dumps({"per_source": args.per_source, "label_ids": [r.label_id for r in records]}, indent=0)
    )
    speed_path = args.out / "speed.json"
    if args.phase in ("all", "extract"):
        speed = extract(records, args.model, store, args.batch_size, layers, not args.no_timing)
        if speed:
            speed_path.write_text(json.dumps(speed, indent=1))
    if args.phase in ("all", "evaluate"):
        from trustflow.tasks.seval.critic_benchmark import evaluate_all, print_tables

        speed = json.loads(speed_path.read_text()) if speed_path.is_file() else {}
        cache = FeatureCache(store, args.model, layers, POOLINGS)  # type: ignore[arg-type]
        judge = None
        if args.judge_model != "none" and args.second_stage_budget > 0:
            judge = _judge(store, args.judge_model, speed, speed_path)
        result = evaluate_all(records, cache, speed, judge, args.second_stage_budget)
        (args.out / "result.json").write_text(json.dumps(result, indent=1))
        if args.json:
            print(json.dumps(result))
        else:
            print_tables(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
