"""Flows started by storage events: new datasets get ingested, new model cards get evaluated.

``trustflow events relay`` turns object-store changes into Prefect events; the deployment
triggers in ``prefect.yaml`` start these flows with the object's key. Both are idempotent
on their inputs, so an event delivered twice costs nothing: ingestion is keyed by the
content fingerprint, evaluations by a digest of their parameters (re-running resumes), and
the model leaderboard is keyed by (card, card etag, evaluation, metric). The work lives in
``tasks/continuous/stages.py``; these flows only compose it with the pipelines' flows.
A text-classifier card (or a ``fairness_train`` checkpoint dropped under ``models/``) gets
``fairness_evaluate``; a speech-recognizer card (``run:<asr_train run>``) gets ``asr_evaluate``
(WER per domain and the out-of-domain mean). A classifier card is also checked against every registered provenance fingerprint: its row
``provenance`` / ``rho vs <source>`` puts "derived from X, ρ = …" on the model leaderboard.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from prefect import flow

from trustflow.tasks.continuous.stages import (
    asr_rows,
    card_for_object,
    classifier_spec,
    fairness_model,
    fairness_rows,
    landed_source,
    open_store,
    provenance_rows,
    publish_not_a_card,
    record_card_results,
    relative_key,
    robustness_rows,
    row_base,
    seval_rows,
)


@flow(name="ingest_landed", flow_run_name="landed-{key}")
def ingest_landed(key: str) -> dict[str, Any]:
    """Ingest what landed under ``incoming/<kind>/…``: one object (an S-Eval zip), or a folder
    announced by its ``_READY`` marker (a COCO set or image folder uploaded file by file)."""
    from trustflow.flows.ingest import ingest_flow

    store = open_store()
    kind, source = landed_source(store, key)
    return ingest_flow(source=source, kind=kind, store_url=store.url)


@flow(name="evaluate_model_card", flow_run_name="card-{key}")
def evaluate_model_card(key: str, etag: str = "") -> dict[str, Any]:
    """Evaluate the model a new object under ``models/`` stands for; append to the model leaderboard."""
    store = open_store()
    rel = relative_key(store, key)
    card = card_for_object(store, rel)
    if card is None:
        return publish_not_a_card(rel)
    base = row_base(rel, etag, card)
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
        rows = seval_rows(base, card.model, result)
    elif card.kind == "text-classifier":
        from trustflow.flows.fairness import fairness_evaluate

        req_f = card.fairness
        assert req_f is not None
        result = fairness_evaluate(
            models=[fairness_model(store, card, rel)],
            datasets=list(req_f.datasets) or None,
            eec=None if req_f.eec == "none" else req_f.eec,
            eec_pairs=req_f.eec_pairs,
            limit=req_f.limit,
            bootstrap=req_f.bootstrap,
            run_label=card.name,
        )
        rows = fairness_rows(base, result)
    elif card.kind == "speech-recognizer":
        from trustflow.flows.asr import DEFAULT_SHIFTS, asr_evaluate

        req_a = card.asr
        assert req_a is not None and card.model is not None
        result = asr_evaluate(
            models=[card.model],
            datasets=list(req_a.datasets),
            shifts=list(req_a.shifts) or list(DEFAULT_SHIFTS),
            clean_only=list(req_a.clean_only),
            limit=req_a.limit,
            shard=req_a.shard,
            run_label=card.name,
        )
        rows = asr_rows(base, result)
    else:
        from trustflow.flows.robust_vision import robustness_evaluate

        req_r = card.robustness
        assert req_r is not None
        with tempfile.TemporaryDirectory(prefix="tf-card-") as tmp:
            spec = classifier_spec(store, card, Path(tmp))
            result = robustness_evaluate(
                model=spec,
                dataset=req_r.dataset,
                attacks=req_r.attacks,
                eps=req_r.eps,
                corruptions=req_r.corruptions,
                limit=req_r.limit,
            )
            # a registered fingerprint (any fingerprint_embed run) is checked against every new classifier
            rows = robustness_rows(base, result) + provenance_rows(store, base, spec)
    return record_card_results(store, card, rel, rows)
