"""Attribute-robustness benchmark (ImageNet-E style, arXiv 2303.17096).

Editor part (:func:`bench_editors`): the embedded default objects (scikit-image photographs,
boxes refined by GrabCut, data/embedded_objects.py) and a slice of the synthetic set are
edited by every editor in the registry at all its default levels, in one process; it prints
images edited per second per editor, the GrabCut time per object, and the one-off
inpainting time (cached per object and shared by the editors after the first).

The evaluation part (throughput on Ray vs a loop, accuracy-drop table) is added by the
evaluation side of the pipeline; ``main()`` runs every part.

    python benchmarks/attribute_edits.py [--synthetic 20] [--repeat 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--synthetic", type=int, default=20, help="synthetic objects to edit")
    parser.add_argument("--repeat", type=int, default=1, help="passes over the objects")
    args = parser.parse_args()
    np.seterr(all="ignore")
    bench_editors(args.synthetic, args.repeat)


if __name__ == "__main__":
    main()
