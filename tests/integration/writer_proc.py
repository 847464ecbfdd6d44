"""A stage writer run as a separate process, so a test can SIGKILL it mid-stage.

usage: writer_proc.py STORE_URL N_PARTS ROWS_PER_PART SLEEP_S [S3_ENDPOINT]
Writes the missing rows part by part (sleeping between parts), then commits.
"""

from __future__ import annotations

import sys
import time

import pyarrow as pa

from trustflow.data.schemas import VersionedSchema
from trustflow.data.store import ArtifactStore, StageRef
from trustflow.settings import load_settings

SCHEMA = VersionedSchema(
    "killtest", 1, pa.schema([pa.field("k", pa.int64(), nullable=False), pa.field("v", pa.string())])
)
REF = StageRef("killflow", "run-1", "numbers")


def main() -> None:
    url, n_parts, per_part, sleep_s = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    endpoint = sys.argv[5] if len(sys.argv) > 5 else None
    store = ArtifactStore(url, load_settings(s3_endpoint_url=endpoint))
    writer = store.writer(REF, SCHEMA, ["k"])
    existing = writer.existing_keys()
    for i in range(n_parts):
        keys = list(range(i * per_part, (i + 1) * per_part))
        batch = writer.missing(pa.table({"k": keys, "v": [f"value-{k}" for k in keys]}), existing)
        if batch.num_rows:
            writer.write_part(batch)
            print(f"part {i} written", flush=True)
        time.sleep(sleep_s)
    writer.commit({"complete": True})
    print("committed", flush=True)


if __name__ == "__main__":
    main()
