"""The provenance pipeline's Prefect tasks (filled in below) and the store helpers they share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from trustflow.data.store import StageRef

FINGERPRINT_KEYS = ["model", "filter", "channel", "u", "v"]


def write_fingerprint_stage(store: Any, ref: StageRef, models: Sequence[tuple[str, Any]]) -> int:
    """The ``fingerprint`` stage (schema FINGERPRINT) of ``(name, fingerprinted model)`` pairs,
    keyed by (model, filter, channel, u, v), so a re-run adds no rows. Returns its row count."""
    import pyarrow as pa

    from trustflow.data.schemas import FINGERPRINT
    from trustflow.models.fingerprint.module import extract_fingerprint, fingerprint_rows

    tables = [
        pa.table(fingerprint_rows(name, extract_fingerprint(model)), schema=FINGERPRINT.schema)
        for name, model in models
    ]
    manifest = store.write_stage(
        ref, FINGERPRINT, pa.concat_tables(tables), FINGERPRINT_KEYS, {"models": [n for n, _ in models]}
    )
    return int(manifest.rows)
