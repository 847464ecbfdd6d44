"""Ingest S-Eval JSONL(.zip) files: one Ray task per file, into the ``prompts`` stage."""

from __future__ import annotations

from pathlib import Path

from trustflow.data.loaders.seval import SevalFile, check_archive, find_seval_files, read_seval_file
from trustflow.data.schemas import SEVAL_PROMPTS
from trustflow.data.store import ArtifactStore, Manifest, StageRef
from trustflow.tasks.ingest_common import INGEST_FLOW, INGESTERS
from trustflow.tasks.ray_parts import Chunk, write_parts_on_ray

PROMPT_KEYS = ["set", "lang", "prompt_id"]


def _part_id(spec: SevalFile) -> str:
    return spec.path.name.replace(".jsonl", "").replace(".zip", "")


@INGESTERS.register("seval")
def ingest_seval(store: ArtifactStore, dataset_id: str, source: Path) -> dict[str, Manifest]:
    files = find_seval_files(source)
    for spec in files:  # validate every archive before writing anything
        check_archive(spec.path)
    ref = StageRef(INGEST_FLOW, dataset_id, "prompts")
    chunks = [Chunk(_part_id(spec), spec) for spec in files]
    write_parts_on_ray(store, ref, SEVAL_PROMPTS, PROMPT_KEYS, chunks, read_seval_file)
    manifest = store.writer(ref, SEVAL_PROMPTS, PROMPT_KEYS).commit(
        {"files": [f.path.name for f in files], "langs": sorted({f.lang for f in files})}
    )
    return {"prompts": manifest}
