"""Edits and previews of a stored ``masked_objects`` dataset, by dataset id.

The editing library (``make.py``, ``preview.py``) works on tables and objects; users name
an ingested dataset. This module is the join: it reads the dataset's ``masked_objects``
stage, derives the edits run id from (dataset, canonical editor specs, seed) so the same
request always lands in the same stage, and returns a committed stage at once when it
exists (a rerun edits nothing).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from trustflow import names
from trustflow.data.schemas import MASKED_OBJECTS
from trustflow.data.store import ArtifactStore, StageRef
from trustflow.errors import InputError
from trustflow.tasks.attributes.make import DEFAULT_EDITORS, build_editor, make_edits, object_of
from trustflow.tasks.attributes.preview import preview_grid
from trustflow.tasks.ingest.common import stage_ref


def masked_objects(store: ArtifactStore, dataset_id: str) -> pa.Table:
    """The dataset's objects; an id that is not a masked_objects dataset is an input error."""
    ref = stage_ref(dataset_id, MASKED_OBJECTS.name)
    if store.manifest(ref) is None:
        raise InputError(
            f"dataset {dataset_id!r} has no masked_objects stage: ingest images with masks first "
            "(trustflow ingest --kind grabcut|maskfolder|coco-masks|synthetic-objects …)"
        )
    return store.read_table(ref)


def edits_ref(dataset_id: str, specs: Sequence[str], seed: int) -> StageRef:
    payload = json.dumps([dataset_id, list(specs), seed])
    run_id = f"edits-{hashlib.sha256(payload.encode()).hexdigest()[:12]}"
    return StageRef(names.ATTRIBUTE_ROBUSTNESS, run_id, names.EDITS)


def edit_dataset(store: ArtifactStore, dataset_id: str, editor_specs: Sequence[str] = (), seed: int = 0) -> StageRef:
    """The committed ``attribute_edits`` stage of ``dataset_id`` under ``editor_specs``
    (default: every default editor); made (resumably) unless it exists."""
    specs = [build_editor(s)[1] for s in (editor_specs or DEFAULT_EDITORS)]
    if "original" not in {build_editor(s)[0].attribute for s in specs}:
        specs.insert(0, "original")  # drops are measured against the originals
    ref = edits_ref(dataset_id, specs, seed)
    if store.manifest(ref) is not None:
        return ref
    make_edits(store, ref, masked_objects(store, dataset_id), specs, seed, attrs={"objects_dataset": dataset_id})
    return ref


def preview_dataset(
    store: ArtifactStore,
    dataset_id: str,
    object_id: str | None = None,
    editor_specs: Sequence[str] = (),
    seed: int = 0,
) -> bytes:
    """PNG grid of one object (default: the first by id) across every editor level."""
    table = masked_objects(store, dataset_id)
    if object_id is not None:
        table = table.filter(pc.field("object_id") == object_id)
        if table.num_rows == 0:
            raise InputError(f"dataset {dataset_id!r} has no object {object_id!r} (--object)")
    else:
        table = table.sort_by("object_id").slice(0, 1)
    return preview_grid(object_of(table.to_pylist()[0]), list(editor_specs or DEFAULT_EDITORS), seed)


__all__ = ["edit_dataset", "edits_ref", "masked_objects", "preview_dataset"]
