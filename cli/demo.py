"""``trustflow demo``'s start-up around ``flows/demo.demo_flow``: the local SeaweedFS, the
S-Eval sample's location, the generated face set, and the lines the user reads on the way."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from trustflow.cli.common import console, flow_session
from trustflow.settings import Settings, load_settings

_REPO_ROOT = Path(__file__).resolve().parent.parent


def default_seval_dir() -> Path | None:
    """The S-Eval sample: ``$TRUSTFLOW_SEVAL_DIR``, else ``../shared/data/s-eval`` beside the
    checkout or the working directory (the project never copies S-Eval's prompts into its tree)."""
    candidates = [
        os.environ.get("TRUSTFLOW_SEVAL_DIR"),
        _REPO_ROOT.parent / "shared" / "data" / "s-eval",
        Path("../shared/data/s-eval"),
    ]
    for c in candidates:
        if c and Path(c).is_dir():
            return Path(c).resolve()
    return None


@contextmanager
def _store_environment(settings: Settings) -> Iterator[None]:
    """Point every flow at the demo's store for the run: flows reload settings from the
    environment, so without this a flow that builds its own store (robust vision, provenance,
    attributes) would write to the local-directory default while the demo reports SeaweedFS.
    The previous values come back afterwards (the demo also runs inside tests)."""
    wanted = {"TRUSTFLOW_STORE_URL": settings.store_url, "TRUSTFLOW_S3_ENDPOINT_URL": settings.s3_endpoint_url}
    before = {key: os.environ.get(key) for key in wanted}
    os.environ.update({key: value for key, value in wanted.items() if value})
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_demo(
    settings: Settings,
    keep_storage: bool = False,
    local: bool = False,
    seval_dir: str | None = None,
    pipelines: list[str] | None = None,
) -> dict[str, Any]:
    """Start storage (unless ``local`` or a store URL is configured), run the demo flow on
    ``pipelines`` (default: the registry's default set), stop storage again (unless
    ``keep_storage``); returns what the flow returned."""
    from trustflow.data.synthetic_faces import make_face_coco
    from trustflow.flows.demo import demo_flow
    from trustflow.flows.demos.base import select_pipelines
    from trustflow.flows.demos.detector import DEMO_FACE_IMAGES

    chosen = select_pipelines(pipelines)  # an unknown name fails before storage starts
    from trustflow.infra.local_credentials import ensure_local_credentials
    from trustflow.infra.seaweedfs import SeaweedFS

    seaweed: SeaweedFS | None = None
    if not local and settings.store_url is None:
        ensure_local_credentials(settings.home_dir, create=True)
        seaweed = SeaweedFS.from_settings(settings)
        console.print(f"starting SeaweedFS at {seaweed.endpoint_url} …")
        seaweed.up()
        settings = load_settings(store_url=f"s3://{seaweed.config.bucket}", s3_endpoint_url=seaweed.endpoint_url)
    store_url = settings.effective_store_url
    seval_path = None
    if "seval" in chosen:
        seval_path = Path(seval_dir).resolve() if seval_dir else default_seval_dir()
        if seval_path is None:
            console.print("S-Eval sample not found (../shared/data/s-eval): skipping it")
    faces_dir = None
    if "detector" in chosen:
        faces_dir = make_face_coco(settings.home_dir / "demo" / "faces", n_images=DEMO_FACE_IMAGES, seed=0)
    try:
        with _store_environment(settings), flow_session(settings):
            landed = demo_flow(
                seval_dir=str(seval_path) if seval_path else None,
                faces_dir=str(faces_dir) if faces_dir else None,
                store_url=store_url,
                pipelines=chosen,
            )
    finally:
        if seaweed is not None and not keep_storage:
            seaweed.down()
    console.print(
        f"store: {store_url}"
        + ("" if seaweed is None or not keep_storage else " (still running: trustflow storage down)")
    )
    return landed
