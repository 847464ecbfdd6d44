"""Attribute-robustness benchmark (ImageNet-E style, arXiv 2303.17096).

Editor part (:func:`bench_editors`): the embedded default objects (scikit-image photographs,
boxes refined by GrabCut, data/embedded_objects.py) and a slice of the synthetic set are
edited by every editor in the registry at all its default levels, in one process; it prints
images edited per second per editor, the GrabCut time per object, and the one-off
inpainting time (cached per object and shared by the editors after the first).

Drop part (:func:`bench_drops`), the paper's two findings on this project's data:

(a) the embedded default end to end (``demo_attribute_robustness``: GrabCut ingest, every
    editor, MobileNetV2 + EfficientNet-Lite0 with their ImageNet weights): top-1 on the
    originals and the drop per attribute (pooled over levels) and per level, with the
    paired-bootstrap 95 % interval, printed next to ImageNet-E's 9.23 % average background
    drop;
(b) adversarial training: ``small_cnn`` trained by the flow's own ``train_methods`` path
    (Ray Train) with standard, PGD-AT and FGSM-LAW on the synthetic masked set
    (``synthetic-objects`` ingest, seed 1), then evaluated on every edit of *held-out*
    synthetic objects (seed 2): accuracy on their originals says whether the models learnt
    the set, the drops per attribute per method say whether adversarial training made a
    model less robust to attribute edits.

Everything runs in a temporary home with a file store and a local Ray of 2 CPUs. Throughput
of the evaluation (Ray vs a loop) is ``benchmarks/attribute_eval.py``.

    python benchmarks/attribute_edits.py [--part editors|drops|all] [--synthetic 20] [--repeat 1]
        [--train-per-class 600] [--test-per-class 20] [--epochs 20] [--lr 0.02]
        [--original-set] [--skip-embedded]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from trustflow.data.embedded_objects import write_embedded_objects
from trustflow.data.loaders.masked import scan_boxes
from trustflow.data.masked_objects import decode_image, decode_mask
from trustflow.data.synthetic_objects import synthetic_object
from trustflow.tasks.attributes.compose import clean_background
from trustflow.tasks.attributes.editors import EDITORS, MaskedObject
from trustflow.tasks.attributes.make import build_editor, edit_rng
from trustflow.tasks.ingest.kinds.grabcut import build_grabcut_rows


def _embedded() -> tuple[list[MaskedObject], float]:
    with tempfile.TemporaryDirectory() as tmp:
        files = scan_boxes(write_embedded_objects(Path(tmp)))
        start = time.perf_counter()
        rows = build_grabcut_rows(files).to_pylist()
        grabcut_s = (time.perf_counter() - start) / len(rows)
    objs = [
        MaskedObject(r["object_id"], r["label"], decode_image(r["image_png"]), decode_mask(r["mask_png"])) for r in rows
    ]
    return objs, grabcut_s


def _rate(objs: list[MaskedObject], name: str, repeat: int) -> tuple[float, int]:
    editor, _ = build_editor(name)
    n, start = 0, time.perf_counter()
    for _ in range(repeat):
        for obj in objs:
            for level in editor.levels():
                editor.edit(obj, level, edit_rng(0, obj.object_id, editor.attribute, level))
                n += 1
    return n / (time.perf_counter() - start), n


def bench_editors(synthetic: int = 20, repeat: int = 1) -> dict[str, dict[str, float]]:
    """Images edited per second per editor on the embedded default and on 64² synthetic objects."""
    embedded, grabcut_s = _embedded()
    sets = {
        "embedded (300-500 px)": embedded,
        "synthetic (64 px)": [MaskedObject(str(i), *synthetic_object(i, 0, 64)) for i in range(synthetic)],
    }
    print(f"GrabCut: {grabcut_s:.2f} s per embedded object ({len(embedded)} objects)")
    results: dict[str, dict[str, float]] = {}
    for set_name, objs in sets.items():
        start = time.perf_counter()
        for obj in objs:
            clean_background(obj)  # the one-off inpainting, cached for every editor after it
        inpaint_s = (time.perf_counter() - start) / len(objs)
        print(f"\n{set_name}: inpainting {inpaint_s * 1000:.0f} ms per object (once, cached)")
        print(f"{'editor':<12} {'levels':>6} {'images':>7} {'images/s':>9}")
        results[set_name] = {"inpaint_s": inpaint_s}
        for name in EDITORS.names():
            rate, n = _rate(objs, name, repeat)
            results[set_name][name] = rate
            print(f"{name:<12} {len(build_editor(name)[0].levels()):>6} {n:>7} {rate:>9.1f}")
    return results


PAPER_BACKGROUND_DROP = 0.0923  # ImageNet-E: mean top-1 drop under background edits
METHODS = ("standard", "pgd_at", "fgsm_law")
TRAIN_SIZE = 16  # small_cnn's receptive field (~10 px) must see most of a shape: trained at 16²
OBJECT_SIZE = 32  # synthetic objects are drawn (and edited) at 32², resized to 16² for the CNN


# PGD-AT with 3 steps of eps/2 (default 10 steps of 2/255) so three trainings fit the budget
# the adversarial methods' L-inf budget: at 8/255 neither PGD-AT nor FGSM-LAW learns the 16²
# synthetic set in 20 epochs (chance); at 2/255 PGD-AT matches standard training (0.84 / 0.83)
ADV_EPS = 2 / 255


def method_options(eps: float) -> dict[str, dict[str, float]]:
    """Per-method options of the adversarial trainings at L-inf budget ``eps``."""
    return {"pgd_at": {"steps": 3, "alpha": eps / 2, "eps": eps}, "fgsm_law": {"eps": eps}}


LEARNT = 0.6  # held-out top-1 on the originals below which a trained model's drops are noise
BATCH_SIZE = 32  # per worker: ~37 SGD steps per epoch on 2 400 training images (128 gave 4)
# The original synthetic set (photo backgrounds, striped/speckled objects, 8-40 % of the frame)
# is not learnt by small_cnn at 16² in budget (held-out 0.26 after 12 epochs). In-process probes
# (standard training, 3 000 objects, 16², width 16): the original set at lr 0.1 stays at chance
# (0.20), at lr 0.01 reaches 0.36 after 6 epochs; plain objects on gradient/flat backgrounds at
# lr 0.01: 0.47; and with objects covering 20-45 % of the frame at lr 0.02: 0.91 after 10
# epochs (24 s). lr 0.1 (the flow's default) keeps every set at chance with batch 32. Through
# the flow (Ray Train, 2 workers of batch 32, 20 % of the set held out for the probe) 10 epochs
# were not enough (held-out 0.23); 20 epochs: standard 0.81.
EASY_SET: dict[str, Any] = {"backgrounds": ["gradient", "flat"], "textures": ["plain"], "area": [0.2, 0.45]}
TRAIN_LR = 0.02


def _prepare_environment(tmp: Path) -> None:
    """A throw-away home, file store and ephemeral Prefect; must run before Prefect is imported."""
    (tmp / "prefect").mkdir(parents=True, exist_ok=True)
    os.environ.update(
        TRUSTFLOW_HOME=str(tmp / "home"),
        TRUSTFLOW_STORE_URL=f"file://{tmp / 'store'}",
        TRUSTFLOW_RAY_NUM_CPUS="2",
        PREFECT_HOME=str(tmp / "prefect"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_LOGGING_LEVEL="WARNING",
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180",
        RAY_AUTH_MODE="disabled",
        RAY_USAGE_STATS_ENABLED="0",
    )
    for name in ("PREFECT_API_URL", "PREFECT_PROFILES_PATH"):
        os.environ.pop(name, None)


def _interval(r: dict[str, Any]) -> str:
    return f"{r['drop_top1']:+.2f} [{r['drop_low']:+.2f}, {r['drop_high']:+.2f}]"


def print_drops(board: list[dict[str, Any]], names: dict[str, str] | None = None) -> None:
    """Per model: top-1 on the originals, then per attribute the pooled drop and each level's."""
    from trustflow.tasks.attributes.metrics import ALL_LEVELS, ORIGINAL

    names = names or {}
    for model in dict.fromkeys(r["model"] for r in board):
        rows = [r for r in board if r["model"] == model]
        original = next(r for r in rows if r["attribute"] == ORIGINAL)
        print(
            f"\n{names.get(model, model)}: top-1 on the originals {original['top1']:.2f} ({original['objects']} objects)"
        )
        print(f"  {'attribute':<11} {'pooled drop [95 %]':<24} per level: drop (top-1)")
        for attribute in dict.fromkeys(r["attribute"] for r in rows if r["attribute"] != ORIGINAL):
            levels = [r for r in rows if r["attribute"] == attribute]
            pooled = next((r for r in levels if r["level"] == ALL_LEVELS), levels[0])
            per_level = "  ".join(
                f"{r['level']} {r['drop_top1']:+.2f} ({r['top1']:.2f})" for r in levels if r["level"] != ALL_LEVELS
            )
            print(f"  {attribute:<11} {_interval(pooled):<24} {per_level}")


def _ingest_synthetic(tmp: Path, seed: int, per_class: int, options: dict[str, Any]) -> str:
    from trustflow.flows.ingest import ingest_flow

    source = tmp / f"synthetic-{seed}.json"
    source.write_text(json.dumps({"seed": seed, "per_class": per_class, "size": OBJECT_SIZE, **options}))
    return str(ingest_flow(source=str(source), kind="synthetic-objects")["dataset_id"])


def bench_drops(
    train_per_class: int = 600,
    test_per_class: int = 20,
    epochs: int = 20,
    bootstrap: int = 1000,
    easy: bool = True,
    embedded: bool = True,
    lr: float = TRAIN_LR,
    eps: float = ADV_EPS,
) -> dict[str, Any]:
    """(a) the embedded default's drop table (skipped with ``embedded=False``); (b) standard vs
    PGD-AT vs FGSM-LAW small CNNs on edits of held-out synthetic objects, of the easier set
    (``EASY_SET``: plain objects on gradient/flat backgrounds, 20-45 % of the frame) unless
    ``easy=False``; ``eps`` is the L-inf budget of both adversarial methods (PGD-AT's step
    stays eps/2, 3 steps). Returns the leaderboards and the timings."""
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="tf-attrdrops-") as tmp_name:
        tmp = Path(tmp_name)
        _prepare_environment(tmp)
        from trustflow.flows.attribute_robustness import attribute_robustness, demo_attribute_robustness
        from trustflow.infra.prefect_runtime import prefect_runtime
        from trustflow.infra.ray_runtime import shutdown_ray
        from trustflow.settings import load_settings

        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from load_monitor import OtherLoad

        with prefect_runtime(load_settings()), OtherLoad() as load:
            if embedded:
                t0 = time.perf_counter()
                demo = demo_attribute_robustness(bootstrap=bootstrap)
                out["embedded_s"] = time.perf_counter() - t0
                print(f"\n== (a) embedded default: {demo['edits']} ({out['embedded_s']:.0f} s end to end) ==")
                print_drops(demo["leaderboard"])
                out["embedded"] = demo["leaderboard"]

            t0 = time.perf_counter()
            options = EASY_SET if easy else {}
            train_ds = _ingest_synthetic(tmp, 1, train_per_class, options)
            test_ds = _ingest_synthetic(tmp, 2, test_per_class, options)
            result = attribute_robustness(
                models=[],
                objects=test_ds,
                train_dataset=f"stage:ingest/{train_ds}/masked_objects",
                train_methods=list(METHODS),
                train_method_options=method_options(eps),
                train_options={"batch_size": BATCH_SIZE, "lr": lr},
                train_arch="small_cnn",
                train_epochs=epochs,
                train_image_size=TRAIN_SIZE,
                train_workers=2,
                bootstrap=bootstrap,
                run_label="bench-adv",
            )
            # "best" is the epoch with the best PGD accuracy: right for adversarial training,
            # arbitrary for a standard model (its PGD accuracy is ~0 every epoch), so the
            # final weights of every method are evaluated too, on the same edits
            finals = [t["model"].replace("/best", "/final") for t in result["trained"]]
            final = attribute_robustness(
                models=finals,
                edits=result["edits"],
                image_size=TRAIN_SIZE,
                bootstrap=bootstrap,
                run_label="bench-adv-final",
            )
            out["trained_s"] = time.perf_counter() - t0
            names = {t["model"]: f"small_cnn {t['method']} (best)" for t in result["trained"]}
            names.update({f: n.replace("(best)", "(final)") for f, n in zip(finals, names.values(), strict=True)})
            n_train = train_per_class * 5
            print(
                f"\n== (b) small_cnn trained here on {n_train} synthetic objects ({'easy' if easy else 'original'} "
                f"set {options}, seed 1, {OBJECT_SIZE}² → {TRAIN_SIZE}², {epochs} epochs, lr {lr}, eps {eps:.4f}, Ray Train 2 "
                "workers), evaluated on every edit of "
                f"{test_per_class * 5} held-out objects (seed 2); {out['trained_s']:.0f} s =="
            )
            print_drops(result["leaderboard"] + final["leaderboard"], names)
            held_out = {
                names[r["model"]]: r["top1"]
                for r in final["leaderboard"] + result["leaderboard"]
                if r["level"] == "original"
            }
            if max(held_out.values(), default=0.0) < LEARNT:
                print(
                    f"\nno trained model learnt the set (best held-out top-1 {max(held_out.values()):.2f}, chance "
                    "0.20): its drops are noise and say nothing about adversarial training"
                )
            out["trained"] = {"best": result["leaderboard"], "final": final["leaderboard"]}
            shutdown_ray()
        print(f"\n{load.summary()}")
    if not embedded:
        return out
    bg = {r["model"]: r for r in out["embedded"] if r["attribute"] == "background" and r["level"] == "all"}
    print(
        f"\nImageNet-E (arXiv 2303.17096) reports a {PAPER_BACKGROUND_DROP:.2%} average top-1 drop under its "
        "background edits; here: "
        + ", ".join(
            f"{m.split('?')[0]} {r['drop_top1']:+.1%} [{r['drop_low']:+.1%}, {r['drop_high']:+.1%}]"
            for m, r in bg.items()
        )
        + ". Not the same measurement: 5 scikit-image photos with GrabCut masks (intervals span tens of "
        "points) vs the paper's thousands of ImageNet validation images, and classical edits (flat, gradient, "
        "texture, clutter over a Telea-inpainted background) vs the paper's diffusion-guided backgrounds."
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("editors", "drops", "all"), default="all")
    parser.add_argument("--synthetic", type=int, default=20, help="synthetic objects to edit (editors part)")
    parser.add_argument("--repeat", type=int, default=1, help="passes over the objects (editors part)")
    parser.add_argument("--train-per-class", type=int, default=600, help="synthetic training objects per class")
    parser.add_argument("--test-per-class", type=int, default=20, help="held-out objects per class to edit")
    parser.add_argument("--epochs", type=int, default=20, help="training epochs per method")
    parser.add_argument("--lr", type=float, default=TRAIN_LR, help="SGD learning rate of every method")
    parser.add_argument("--original-set", action="store_true", help="train on the original (hard) synthetic set")
    parser.add_argument("--eps", type=float, default=ADV_EPS, help="L-inf budget of PGD-AT and FGSM-LAW")
    parser.add_argument("--skip-embedded", action="store_true", help="drops part: only (b), the trained models")
    args = parser.parse_args()
    np.seterr(all="ignore")
    if args.part in ("editors", "all"):
        bench_editors(args.synthetic, args.repeat)
    if args.part in ("drops", "all"):
        bench_drops(
            args.train_per_class,
            args.test_per_class,
            args.epochs,
            easy=not args.original_set,
            embedded=not args.skip_embedded,
            lr=args.lr,
            eps=args.eps,
        )


if __name__ == "__main__":
    main()
