"""Ingest S-Eval JSONL(.zip) files: one Ray task per file, into the ``prompts`` stage."""

from __future__ import annotations

import hashlib
from pathlib import Path

from trustflow import names
from trustflow.data.loaders.seval import SevalFile, check_archive, find_seval_files, read_seval_file
from trustflow.data.schemas import SEVAL_PROMPTS
from trustflow.data.store import ArtifactStore, Manifest
from trustflow.registry import NoOptions
from trustflow.tasks.ingest.common import INGESTERS, stage_ref, write_stage_on_ray
from trustflow.tasks.ray_parts import Chunk

PROMPT_KEYS = ["set", "lang", "split", "prompt_id"]


def _part_id(spec: SevalFile, source: Path) -> str:
    """Readable and unique per file: two files may share a name in different folders."""
    rel = spec.path.relative_to(source).as_posix() if source.is_dir() else spec.path.name
    return f"{spec.set}-{spec.lang}-{spec.split}-{hashlib.sha1(rel.encode()).hexdigest()[:10]}"


@INGESTERS.register("seval")
def ingest_seval(store: ArtifactStore, dataset_id: str, source: Path, options: NoOptions) -> dict[str, Manifest]:
    files = find_seval_files(source)
    for spec in files:  # refuse empty files and corrupt archives before writing anything
        check_archive(spec.path)
    ref = stage_ref(dataset_id, names.PROMPTS)
    chunks = [Chunk(_part_id(spec, source), spec) for spec in files]
    manifest = write_stage_on_ray(
        store,
        ref,
        SEVAL_PROMPTS,
        PROMPT_KEYS,
        chunks,
        read_seval_file,
        source,
        "S-Eval records",
        {"files": [f.path.name for f in files], "langs": sorted({f.lang for f in files})},
    )
    return {names.PROMPTS: manifest}
