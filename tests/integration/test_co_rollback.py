"""Catastrophic overfitting end to end: plain FGSM training (one step, no random start) with a
large budget on digits overfits to FGSM; the per-epoch probe flags it, training rolls back to
the best checkpoint, the best model is never a flagged epoch, and a Prefect event announces it."""

from __future__ import annotations

import pytest

from trustflow import names
from trustflow.data.store import ArtifactStore, StageRef
from trustflow.infra.prefect_runtime import prefect_runtime

pytestmark = [pytest.mark.integration]


def test_catastrophic_overfitting_is_flagged_rolled_back_and_announced(
    local_settings, ray_cluster, monkeypatch
) -> None:  # noqa: ANN001
    import prefect.events

    from trustflow.flows.robust_vision import adversarial_train

    events: list[dict] = []
    monkeypatch.setattr(prefect.events, "emit_event", lambda **kw: events.append(kw))
    with prefect_runtime(local_settings):
        result = adversarial_train(
            method="pgd_at",
            method_options={"steps": 1, "random_start": False, "alpha": 0.375},
            eps=0.3,
            epochs=8,
            workers=1,
            lr=0.1,
            batch_size=64,
            co_policy="rollback",
            run_id="co-rollback",
        )
    rows = result["epochs"]
    flagged = [r for r in rows if r["co"]]
    assert flagged, [(r["epoch"], r["fgsm_acc"], r["pgd_acc"]) for r in rows]
    assert all(r["rolled_back"] for r in flagged)  # policy rollback: every flagged epoch went back to the best weights
    assert all(r["co_reason"] for r in flagged)
    assert result["best_epoch"] not in result["co_epochs"] and result["best_epoch"] >= 0
    best_row = next(r for r in rows if r["epoch"] == result["best_epoch"])
    assert best_row["pgd_acc"] == max(r["pgd_acc"] for r in rows if not r["co"]) or best_row["evaluated"] == "ema"
    assert [e["event"] for e in events] == ["trustflow.training.catastrophic-overfitting"]
    assert events[0]["payload"] == {"epochs": result["co_epochs"], "policy": "rollback"}
    stored = (
        ArtifactStore(settings=local_settings)
        .read_table(StageRef(names.ADVERSARIAL_TRAIN, "co-rollback", names.EPOCHS))
        .to_pylist()
    )
    assert [r["epoch"] for r in stored if r["rolled_back"]] == [r["epoch"] for r in flagged]
