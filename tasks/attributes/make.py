"""Make the ``attribute_edits`` stage: every object × editor level, Ray-parallel, resumable.

``make_edits(store, ref, objects, editor_specs, seed)`` is what the attribute-robustness flow
calls. Each edit's key is ``edit_id = object_id|attribute|level|seed``; the randomness of
one edit comes from a generator seeded by a hash of (seed, object_id, attribute, level), so
the same edit is the same pixels on any worker, in any order, on a resumed run. Work is
chunked by object (all levels of one object in one Ray task, so its inpainted background is
made once, see compose.clean_background); each chunk's part id is a hash of its objects and
the editor specs, a chunk whose part is on storage is skipped, and rows already in the stage
are anti-joined away, so a re-run after a crash writes only what is missing and commits
without duplicates (data/store, tasks/ray_parts.write_parts_on_ray).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from trustflow.data.masked_objects import decode_image, decode_mask, encode_png
from trustflow.data.schemas import ATTRIBUTE_EDITS
from trustflow.data.store import ArtifactStore, Manifest, StageRef
from trustflow.tasks.attributes.editors.base import EDITORS, Editor, MaskedObject
from trustflow.tasks.ray_parts import chunked, write_parts_on_ray

EDIT_KEYS = ["edit_id"]
OBJECTS_PER_PART = 4
DEFAULT_EDITORS = ("original", "background", "size", "position", "direction")


def build_editor(spec: str) -> tuple[Editor[Any], str]:
    """The editor a spec names and its canonical spec (the ``editor`` column)."""
    entry, options = EDITORS.resolve(spec)
    return entry.obj(options), EDITORS.spec(entry.name, options)


def edit_id(object_id: str, attribute: str, level: str, seed: int) -> str:
    return f"{object_id}|{attribute}|{level}|{seed}"


def edit_rng(seed: int, object_id: str, attribute: str, level: str) -> np.random.Generator:
    """The generator of one edit: independent of worker, order and the other edits."""
    digest = hashlib.sha256(edit_id(object_id, attribute, level, seed).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def object_of(row: dict[str, Any]) -> MaskedObject:
    """A ``masked_objects`` row (dict) as the editors' input."""
    return MaskedObject(row["object_id"], row["label"], decode_image(row["image_png"]), decode_mask(row["mask_png"]))


def edit_rows(rows: list[dict[str, Any]], specs: Sequence[str], seed: int) -> pa.Table:
    """Every level of every editor for each object row (what one Ray task runs)."""
    editors = [build_editor(s) for s in specs]
    cols: dict[str, list] = {name: [] for name in ATTRIBUTE_EDITS.names}
    for row in rows:
        obj = object_of(row)
        for editor, canonical in editors:
            for level in editor.levels():
                result = editor.edit(obj, level, edit_rng(seed, obj.object_id, editor.attribute, level))
                cols["edit_id"].append(edit_id(obj.object_id, editor.attribute, level, seed))
                cols["object_id"].append(obj.object_id)
                cols["label"].append(obj.label)
                cols["attribute"].append(editor.attribute)
                cols["level"].append(level)
                cols["value"].append(float(result.value))
                cols["editor"].append(canonical)
                cols["seed"].append(seed)
                cols["image_png"].append(encode_png(result.image))
                cols["mask_png"].append(encode_png(result.mask))
    return pa.table(cols, schema=ATTRIBUTE_EDITS.schema)


def _build(payload: tuple[list[dict[str, Any]], tuple[str, ...], int]) -> pa.Table:
    rows, specs, seed = payload
    return edit_rows(rows, specs, seed)


def make_edits(
    store: ArtifactStore,
    ref: StageRef,
    objects: pa.Table,
    editor_specs: Sequence[str] = DEFAULT_EDITORS,
    seed: int = 0,
    *,
    objects_per_part: int = OBJECTS_PER_PART,
    attrs: dict[str, Any] | None = None,
) -> Manifest:
    """Write and commit the ``attribute_edits`` stage ``ref`` for ``objects`` (a
    ``masked_objects`` table) under every editor spec; returns the manifest.

    Resumable: parts already written (a killed run) are kept and their rows not redone."""
    specs = tuple(build_editor(s)[1] for s in editor_specs)  # bad specs fail here, on the driver
    rows = objects.select(["object_id", "label", "image_png", "mask_png"]).to_pylist()
    tag = hashlib.sha256("\x00".join(specs).encode()).hexdigest()[:8] + f"-s{seed}"
    chunks = chunked(
        rows,
        objects_per_part,
        tag,
        key=lambda r: str(r["object_id"]),
        payload=lambda batch: (batch, specs, seed),
    )
    write_parts_on_ray(store, ref, ATTRIBUTE_EDITS, EDIT_KEYS, chunks, _build)
    writer = store.writer(ref, ATTRIBUTE_EDITS, EDIT_KEYS)
    return writer.commit({"editors": list(specs), "seed": seed, "objects": len(rows), **(attrs or {})})


__all__ = ["DEFAULT_EDITORS", "build_editor", "edit_id", "edit_rng", "edit_rows", "make_edits", "object_of"]
