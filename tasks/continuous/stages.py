"""The work behind the event-driven flows (``flows/continuous.py`` only composes these).

Everything here is idempotent on its inputs: the model leaderboard is keyed by (card,
card etag, evaluation, metric), so an event delivered twice rewrites the same rows.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from trustflow import names
from trustflow.data.model_card import ModelCard, parse_model_card
from trustflow.data.schemas import MODEL_LEADERBOARD
from trustflow.data.store import ArtifactStore, StageRef
from trustflow.errors import ConfigError, InputError
from trustflow.settings import load_settings

LEADERBOARD_REF = StageRef(names.CONTINUOUS_EVAL, "models", names.LEADERBOARD)
LEADERBOARD_KEYS = ["card_key", "etag", "evaluation", "metric"]
SEVAL_METRICS = ("safety_score", "asr", "adaptive_asr", "judge_error_rate")
CARD_SUFFIXES = (".yaml", ".yml")
CHECKPOINT_SUFFIXES = {".pt": "ckpt", ".pth": "ckpt", ".ts": "torchscript", ".torchscript": "torchscript"}


def open_store() -> ArtifactStore:
    """The configured store (flows started by events read their settings from the environment)."""
    settings = load_settings()
    return ArtifactStore(settings.effective_store_url, settings)


def relative_key(store: ArtifactStore, key: str) -> str:
    """An event's object key (bucket key, or path under a local store) relative to the store root."""
    key = key.lstrip("/")
    root = store.location.root.strip("/")
    prefix = root.partition("/")[2] if store.location.scheme == "s3" else root  # s3: "bucket/prefix"
    if prefix and key.startswith(prefix + "/"):
        return key[len(prefix) + 1 :]
    return key


def landed_source(store: ArtifactStore, key: str) -> tuple[str, str]:
    """``(kind, source)`` of what landed under ``incoming/<kind>/…``: one object (an S-Eval
    zip), or the folder a ``_READY`` marker announces (a set uploaded file by file)."""
    rel = relative_key(store, key)
    parts = rel.split("/")
    if len(parts) < 3 or parts[0] != "incoming":
        raise ConfigError(f"{key}: datasets land under incoming/<kind>/ (kind: seval, coco, imagefolder)")
    kind = parts[1]
    target = "/".join(parts[:-1]) if parts[-1] == "_READY" else rel
    if store.location.scheme == "s3":
        return kind, f"s3://{store.location.root.strip('/')}/{target}"
    return kind, str(Path(store.location.root) / target)


def classifier_spec(store: ArtifactStore, card: ModelCard, workdir: Path) -> str:
    """The classifier spec a card names: its ``model``, or its checkpoint copied to ``workdir``."""
    if card.model:
        return card.model
    assert card.checkpoint is not None
    try:
        data = store.read_bytes(store.path(card.checkpoint))
    except InputError as exc:  # a key outside the store (``..``, absolute, symlink out)
        raise InputError(f"model card {card.name}: field 'checkpoint': {exc}") from None
    except (FileNotFoundError, OSError):
        raise InputError(f"model card {card.name}: checkpoint {card.checkpoint} not found in {store.url}") from None
    local = workdir / Path(card.checkpoint).name
    local.write_bytes(data)
    return f"{card.checkpoint_format}:{local}"


def check_classifier_registered(card: ModelCard, rel: str) -> None:
    """A classifier card's ``model`` must be ``run:`` or a registered architecture: the card
    allow-list (``data.model_card``) refuses file specs by their shape; this second check
    asks the registry, so a name the classifier grammar would read as a file never loads."""
    if card.kind != "classifier" or card.model is None:
        return
    from trustflow.models.vision.architectures import CLASSIFIERS
    from trustflow.models.vision.spec import RUN
    from trustflow.models.vision.spec import classifier_spec as parse_classifier

    try:
        name = parse_classifier(card.model).name
    except ConfigError as exc:
        raise InputError(f"{rel}: field 'model': {exc}") from None
    if name != RUN and name not in CLASSIFIERS.names():
        known = ", ".join(sorted(CLASSIFIERS.names()))
        raise InputError(f"{rel}: field 'model': {card.model!r} is not run:<training run> or an architecture ({known})")


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
        card = parse_model_card(text, rel)
        check_classifier_registered(card, rel)
        return card
    if suffix in CHECKPOINT_SUFFIXES:
        name = "-".join(Path(rel).with_suffix("").parts[1:])[:80] or Path(rel).stem
        if suffix == ".pt" and _is_fairness_checkpoint(store, rel):
            return ModelCard(name=name, kind="text-classifier", checkpoint=rel)
        return ModelCard(name=name, kind="classifier", checkpoint=rel, checkpoint_format=CHECKPOINT_SUFFIXES[suffix])  # type: ignore[arg-type]
    return None


def _is_fairness_checkpoint(store: ArtifactStore, rel: str) -> bool:
    """A ``.pt`` that ``fairness_train`` wrote (a text classifier) rather than a vision one."""
    from trustflow.tasks.fairness.stages import checkpoint_payload

    try:
        return checkpoint_payload(store.read_bytes(store.path(rel))) is not None
    except (FileNotFoundError, OSError, InputError):
        return False


def fairness_model(store: ArtifactStore, card: ModelCard, rel: str) -> str:
    """The fairness_train run a text-classifier card names (a checkpoint is registered as one)."""
    from trustflow.tasks.fairness.stages import register_checkpoint

    if card.model:
        return card.model.removeprefix("run:")
    assert card.checkpoint is not None
    return register_checkpoint(store, card.checkpoint, f"model card {rel}")


FAIRNESS_CARD_METRICS = ("accuracy", "macro_f1", "dp_gap", "eo_gap", "flip_rate", "leakage")


def fairness_rows(base: dict[str, Any], result: dict[str, Any]) -> list[dict[str, Any]]:
    """The headline fairness metrics of the card's model, one row each (per dataset when several)."""
    board = result["leaderboard"]
    several = len({r["dataset"] for r in board}) > 1
    return [
        {
            **base,
            "evaluation": "fairness",
            "metric": f"{m} on {r['dataset']}" if several else m,
            "value": r.get(m),
            "run_id": result["run_id"],
        }
        for r in board
        for m in FAIRNESS_CARD_METRICS
    ]


def asr_rows(base: dict[str, Any], result: dict[str, Any]) -> list[dict[str, Any]]:
    """The card's recogniser's WER (fraction) per domain and the out-of-domain mean, one row each."""
    return [
        {**base, "evaluation": "speech", "metric": f"wer {r['domain']}", "value": r["wer"], "run_id": result["run_id"]}
        for r in result["leaderboard"]
    ]


def publish_not_a_card(rel: str) -> dict[str, Any]:
    create_markdown_artifact(
        key="model-card-summary",
        markdown=f"`{rel}` is neither a model card (.yaml) nor a checkpoint: nothing to evaluate",
    )
    return {"card": None, "rows": [], "skipped": rel}


def row_base(rel: str, etag: str, card: ModelCard) -> dict[str, Any]:
    """The columns every leaderboard row of this evaluation shares."""
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return {"card_key": rel, "etag": etag, "model_name": card.name, "kind": card.kind, "evaluated_at": now}


def seval_rows(base: dict[str, Any], model: str, result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per S-Eval headline metric of ``model`` in an S-Eval evaluation's result."""
    (mine,) = [r for r in result["leaderboard"] if r["model"] == model]
    return [
        {**base, "evaluation": "seval", "metric": metric, "value": mine.get(metric), "run_id": result["run_id"]}
        for metric in SEVAL_METRICS
    ]


def robustness_rows(base: dict[str, Any], result: dict[str, Any]) -> list[dict[str, Any]]:
    """Clean accuracy, accuracy per attack and mean corruption accuracy of a robustness run."""
    summary = result["summary"]
    row = {**base, "evaluation": "robustness", "run_id": result["run_id"]}
    rows: list[dict[str, Any]] = []
    if summary["clean_accuracy"] is not None:
        rows.append({**row, "metric": "clean", "value": summary["clean_accuracy"]})
    for label, acc in summary["robust_accuracy"].items():
        rows.append({**row, "metric": label, "value": acc})
    if summary.get("mean_corruption_accuracy") is not None:
        rows.append({**row, "metric": "mean_corruption_accuracy", "value": summary["mean_corruption_accuracy"]})
    return rows


PROVENANCE = "provenance"


def provenance_rows(store: ArtifactStore, base: dict[str, Any], spec: str) -> list[dict[str, Any]]:
    """The card's row of the provenance check: ρ against the closest registered fingerprint
    (stage ``fingerprint`` of any ``fingerprint_embed`` run), metric ``rho vs <source>``,
    ``run_id`` the embed run. No row when nothing is registered or the spec is an untrained
    architecture (nothing to be derived from)."""
    import tempfile

    from trustflow.models.fingerprint.checkpoint import load_model
    from trustflow.models.vision.resolve import resolve_model
    from trustflow.models.vision.spec import CHECKPOINT, spec_file
    from trustflow.models.vision.spec import classifier_spec as parse_classifier
    from trustflow.tasks.provenance.stages import closest_registered, registered_fingerprints

    registered = registered_fingerprints(store)
    if not registered:  # the usual case: no provenance pipeline in use, nothing to load
        return []
    with tempfile.TemporaryDirectory(prefix="tf-prov-") as tmp:
        parsed = parse_classifier(resolve_model(store, spec, Path(tmp)))  # run:<id> → a local ckpt:
        if parsed.name != CHECKPOINT:  # TorchScript or an untrained architecture: skipped
            return []
        model = load_model(spec_file(parsed))
    match = closest_registered(store, model, registered)
    if match is None:
        return []
    return [
        {
            **base,
            "evaluation": PROVENANCE,
            "metric": f"rho vs {match['source']}",
            "value": match["rho"],
            "run_id": match["embed_run"],
        }
    ]


def record_card_results(store: ArtifactStore, card: ModelCard, rel: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Append ``rows`` to the model leaderboard, publish it and a summary of the card, and
    return what the flow returns."""
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
