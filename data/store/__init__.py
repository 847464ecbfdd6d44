"""The artifact store: Parquet stages with manifests, on a local directory or S3."""

from trustflow.data.store.artifact_store import ArtifactStore, StageRef, StageWriter
from trustflow.data.store.manifest import Manifest, PartInfo

__all__ = ["ArtifactStore", "Manifest", "PartInfo", "StageRef", "StageWriter"]
