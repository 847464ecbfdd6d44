"""Flows started by storage events: new datasets get ingested, new model cards get evaluated.

``trustflow events relay`` turns object-store changes into Prefect events; the deployment
triggers in ``prefect.yaml`` start these flows with the object's key. Both are idempotent
on their inputs, so an event delivered twice costs nothing: ingestion is keyed by the
content fingerprint, evaluations by a digest of their parameters (re-running resumes), and
the model leaderboard is keyed by (card, card etag, evaluation, metric).
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from trustflow.data.model_card import ModelCard, parse_model_card
from trustflow.data.schemas import MODEL_LEADERBOARD
from trustflow.data.store import ArtifactStore, StageRef
from trustflow.errors import ConfigError, InputError
from trustflow.settings import load_settings

FLOW = "continuous_eval"
LEADERBOARD_REF = StageRef(FLOW, "models", "leaderboard")
LEADERBOARD_KEYS = ["card_key", "etag", "evaluation", "metric"]


def relative_key(store: ArtifactStore, key: str) -> str:
    """An event's object key (bucket key, or path under a local store) relative to the store root."""
    key = key.lstrip("/")
    root = store.location.root.strip("/")
    if store.location.scheme == "s3":
        prefix = root.split("/", 1)[1] if "/" in root else ""
    else:
        prefix = root
    if prefix and key.startswith(prefix + "/"):
        return key[len(prefix) + 1 :]
    return key


def _store() -> ArtifactStore:
    settings = load_settings()
    return ArtifactStore(settings.effective_store_url, settings)


@flow(name="ingest_landed", flow_run_name="landed-{key}")
def ingest_landed(key: str) -> dict[str, Any]:
    """Ingest what landed under ``incoming/<kind>/…``: one object (an S-Eval zip), or a folder
    announced by its ``_READY`` marker (a COCO set or image folder uploaded file by file)."""
    from trustflow.flows.ingest import ingest_flow

    store = _store()
    rel = relative_key(store, key)
    parts = rel.split("/")
    if len(parts) < 3 or parts[0] != "incoming":
        raise ConfigError(f"{key}: datasets land under incoming/<kind>/ (kind: seval, coco, imagefolder)")
    kind = parts[1]
    target = "/".join(parts[:-1]) if parts[-1] == "_READY" else rel
    if store.location.scheme == "s3":
        source = f"s3://{store.location.root.strip('/')}/{target}"
    else:
        source = str(Path(store.location.root) / target)
    return ingest_flow(source=source, kind=kind, store_url=store.url)


def _classifier_spec(store: ArtifactStore, card: ModelCard, workdir: Path) -> str:
    if card.model:
        return card.model
    assert card.checkpoint is not None
    try:
        data = store.read_bytes(store.path(card.checkpoint))
    except (FileNotFoundError, OSError):
        raise InputError(f"model card {card.name}: checkpoint {card.checkpoint} not found in {store.url}") from None
    local = workdir / Path(card.checkpoint).name
    local.write_bytes(data)
    return f"{card.checkpoint_format}:{local}"


CARD_SUFFIXES = (".yaml", ".yml")
CHECKPOINT_SUFFIXES = {".pt": "ckpt", ".pth": "ckpt", ".ts": "torchscript", ".torchscript": "torchscript"}


def card_for_object(store: ArtifactStore, rel: str) -> ModelCard | None:
    """The card an object under ``models/`` stands for: a YAML card as written, a bare classifier
    checkpoint (our ``ckpt`` format or TorchScript) as a card with the default robustness
    evaluation; anything else (a README, a tokenizer file) → None."""
    suffix = Path(rel).suffix.lower()
    if suffix in CARD_SUFFIXES:
        try:
            text = store.read_bytes(store.path(rel))
        except (FileNotFoundError, OSError):
            raise InputError(f"model card {rel} not found in {store.url} (deleted before the run started?)") from None
        return parse_model_card(text, rel)
    if suffix in CHECKPOINT_SUFFIXES:
        name = "-".join(Path(rel).with_suffix("").parts[1:])[:80] or Path(rel).stem
        return ModelCard(name=name, kind="classifier", checkpoint=rel, checkpoint_format=CHECKPOINT_SUFFIXES[suffix])  # type: ignore[arg-type]
    return None


@flow(name="evaluate_model_card", flow_run_name="card-{key}")
def evaluate_model_card(key: str, etag: str = "") -> dict[str, Any]:
    """Evaluate the model a new object under ``models/`` stands for; append to the model leaderboard."""
    store = _store()
    rel = relative_key(store, key)
    card = card_for_object(store, rel)
    if card is None:
        create_markdown_artifact(
            key="model-card-summary",
            markdown=f"`{rel}` is neither a model card (.yaml) nor a checkpoint: nothing to evaluate",
        )
        return {"card": None, "rows": [], "skipped": rel}
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    base = {"card_key": rel, "etag": etag, "model_name": card.name, "kind": card.kind, "evaluated_at": now}
    rows: list[dict[str, Any]] = []
    if card.kind == "llm":
        from trustflow.flows.seval_evaluate import seval_evaluate

        req = card.seval
        assert req is not None and card.model is not None
        result = seval_evaluate(
            targets=[card.model],
            critic=req.critic,
            suite=req.suite,
            langs=req.langs,
            per_dimension=req.per_dimension,
            attacks_per_base=req.attacks_per_base,
            max_tokens=req.max_tokens,
        )
        (mine,) = [r for r in result["leaderboard"] if r["model"] == card.model]
        for metric in ("safety_score", "asr", "adaptive_asr", "judge_error_rate"):
            rows.append(
                {**base, "evaluation": "seval", "metric": metric, "value": mine.get(metric), "run_id": result["run_id"]}
            )
    else:
        from trustflow.flows.robust_vision import robustness_evaluate

        req_r = card.robustness
        assert req_r is not None
        with tempfile.TemporaryDirectory(prefix="tf-card-") as tmp:
            spec = _classifier_spec(store, card, Path(tmp))
            result = robustness_evaluate(
                model=spec,
                dataset=req_r.dataset,
                attacks=req_r.attacks,
                eps=req_r.eps,
                corruptions=req_r.corruptions,
                limit=req_r.limit,
            )
        summary = result["summary"]
        if summary["clean_accuracy"] is not None:
            rows.append(
                {
                    **base,
                    "evaluation": "robustness",
                    "metric": "clean",
                    "value": summary["clean_accuracy"],
                    "run_id": result["run_id"],
                }
            )
        for label, acc in summary["robust_accuracy"].items():
            rows.append({**base, "evaluation": "robustness", "metric": label, "value": acc, "run_id": result["run_id"]})
        if summary.get("mean_corruption_accuracy") is not None:
            rows.append(
                {
                    **base,
                    "evaluation": "robustness",
                    "metric": "mean_corruption_accuracy",
                    "value": summary["mean_corruption_accuracy"],
                    "run_id": result["run_id"],
                }
            )
    store.write_stage(
        LEADERBOARD_REF, MODEL_LEADERBOARD, pa.Table.from_pylist(rows, MODEL_LEADERBOARD.schema), LEADERBOARD_KEYS
    )
    board = store.read_table(LEADERBOARD_REF).to_pylist()
    create_table_artifact(
        key="model-leaderboard",
        table=[{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items() if k != "etag"} for r in board],
        description="every model card evaluated so far (appended by evaluate_model_card)",
    )
    create_markdown_artifact(
        key="model-card-summary",
        markdown="\n".join(
            [
                f"# `{card.name}` ({card.kind}) from `{rel}`",
                *[f"- {r['evaluation']} {r['metric']}: {r['value']}" for r in rows],
                f"details: run `{rows[0]['run_id']}`" if rows else "",
            ]
        ),
    )
    return {"card": card.model_dump(), "rows": rows, "leaderboard_rows": len(board)}
