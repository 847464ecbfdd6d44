"""The manifest: the small file written last that makes a stage's parts visible.

Readers never list a stage's ``parts/`` directory; they read the parts the manifest names.
A killed writer therefore leaves at most orphan parts that no reader sees, and the next
writer adopts them (their keys are already written) before committing a new manifest.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

MANIFEST_NAME = "_manifest.json"
MANIFEST_FORMAT = 1


class PartInfo(BaseModel):
    """One Parquet file of a stage."""

    name: str
    rows: int
    bytes: int


class Manifest(BaseModel):
    """What a complete stage holds: its parts, row count, schema identity and free-form attrs."""

    format: int = MANIFEST_FORMAT
    flow: str
    run_id: str
    stage: str
    schema_name: str
    schema_version: int
    key_columns: list[str]
    parts: list[PartInfo]
    rows: int
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    trustflow_version: str = ""
    attrs: dict[str, Any] = Field(default_factory=dict)

    def to_json(self) -> bytes:
        return self.model_dump_json(indent=2).encode("utf-8")
