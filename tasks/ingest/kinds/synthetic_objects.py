"""Generate the synthetic masked-object set (data/synthetic_objects.py) as ``masked_objects``.

The source is a JSON file of generator settings (or a folder holding
``synthetic_objects.json``): ``{"seed": 0, "per_class": 40, "size": 64}``, each key
optional, plus the generator's options for an easier set: ``"backgrounds"`` (subset of
photo, gradient, flat), ``"textures"`` (subset of stripes, speckles, plain) and ``"area"``
([min, max] share of the frame); left out, the set is the original one.
The settings file is the dataset's bytes, so its fingerprint names the dataset: the same
settings are the same dataset id, other settings another one. Objects are made in Ray
chunks; object ``i`` depends only on (seed, i), so a resumed ingest makes the same rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from trustflow.data.masked_objects import MaskedRecord, masked_table
from trustflow.data.schemas import MASKED_OBJECTS
from trustflow.data.store import ArtifactStore, Manifest
from trustflow.data.synthetic_objects import CLASSES, synthetic_object
from trustflow.errors import InputError
from trustflow.registry import NoOptions
from trustflow.tasks.ingest.common import INGESTERS, stage_ref, write_stage_on_ray
from trustflow.tasks.ray_parts import Chunk

SETTINGS_FILE = "synthetic_objects.json"
OBJECTS_PER_PART = 256
OBJECT_KEYS = ["object_id"]


class SyntheticSettings(BaseModel):
    """What the settings file may hold."""

    model_config = ConfigDict(extra="forbid")
    seed: int = 0
    per_class: int = Field(40, ge=1, le=100_000)
    size: int = Field(64, ge=24, le=1024)
    backgrounds: list[Literal["photo", "gradient", "flat"]] | None = Field(None, min_length=1)
    textures: list[Literal["stripes", "speckles", "plain"]] | None = Field(None, min_length=1)
    area: tuple[float, float] = (0.08, 0.4)

    @model_validator(mode="after")
    def _area_range(self) -> SyntheticSettings:
        if not 0.0 < self.area[0] <= self.area[1] < 1.0:
            raise ValueError(f"area must be [min, max] with 0 < min <= max < 1, got {list(self.area)}")
        return self

    def generator_options(self) -> dict[str, Any]:
        """The keyword options of ``synthetic_object`` (empty when every option is default)."""
        out: dict[str, Any] = {}
        if self.backgrounds is not None:
            out["backgrounds"] = tuple(self.backgrounds)
        if self.textures is not None:
            out["textures"] = tuple(self.textures)
        if self.area != (0.08, 0.4):
            out["area"] = tuple(self.area)
        return out


def read_settings(source: Path) -> SyntheticSettings:
    path = source / SETTINGS_FILE if source.is_dir() else source
    if not path.is_file():
        raise InputError(f"{source}: no {SETTINGS_FILE} (generator settings: seed, per_class, size)")
    try:
        return SyntheticSettings.model_validate(json.loads(path.read_bytes() or b"{}"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "settings"
        raise InputError(f"{path}: field {field!r}: {err['msg']}") from None


def build_synthetic_rows(payload: tuple[Any, ...]) -> pa.Table:
    """Objects ``start .. stop-1`` (runs in a Ray worker); payload ``(seed, size, start, stop)``
    or ``(seed, size, start, stop, generator options)``."""
    seed, size, start, stop = payload[:4]
    options: dict[str, Any] = dict(payload[4]) if len(payload) > 4 else {}
    records = []
    for i in range(start, stop):
        label, image, mask = synthetic_object(i, seed, size, **options)
        records.append(MaskedRecord(f"synthetic-{seed}-{i:06d}", label, image, mask, "synthetic", f"seed={seed}"))
    return masked_table(records)


@INGESTERS.register("synthetic-objects")
def ingest_synthetic_objects(
    store: ArtifactStore, dataset_id: str, source: Path, options: NoOptions
) -> dict[str, Manifest]:
    s = read_settings(source)
    total = s.per_class * len(CLASSES)
    chunks = [
        Chunk(
            f"{start // OBJECTS_PER_PART:06d}",
            (s.seed, s.size, start, min(total, start + OBJECTS_PER_PART), s.generator_options()),
        )
        for start in range(0, total, OBJECTS_PER_PART)
    ]
    ref = stage_ref(dataset_id, MASKED_OBJECTS.name)
    manifest = write_stage_on_ray(
        store,
        ref,
        MASKED_OBJECTS,
        OBJECT_KEYS,
        chunks,
        build_synthetic_rows,
        source,
        "synthetic objects",
        {**s.model_dump(exclude_none=True), "labels": list(CLASSES)},
    )
    return {MASKED_OBJECTS.name: manifest}
