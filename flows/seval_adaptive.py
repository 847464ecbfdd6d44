"""Adaptive multi-round attacks on a finished S-Eval run: PAIR / TAP / Crescendo → metrics.

A separate flow rather than an option of ``seval_evaluate``: it needs the run's responses and
verdicts to exist (the static stages answer the cheap question first), its rounds cost many
calls per prompt, and it may be added to a run later, with other attacks or more rounds,
without changing that run's id. Its rows go to the same run (stage ``adaptive_turns``), and
the run's metrics and leaderboard are rewritten to include them.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from trustflow import names
from trustflow.data.store import ArtifactStore
from trustflow.settings import load_settings
from trustflow.tasks.ray_parts import StoreSpec
from trustflow.tasks.seval.adaptive import get_adaptive
from trustflow.tasks.seval.stages import adaptive_plan_task, adaptive_task, metrics_task

DEFAULT_ATTACKER = "pkg:qwen2.5-1.5b"  # the tester model of suite generation


@flow(name=names.SEVAL_ADAPTIVE, flow_run_name="adaptive-{run_id}")
def seval_adaptive(
    run_id: str,
    attacks: list[str] = ["pair", "crescendo"],  # noqa: B006 - Prefect parameters are copied per run
    attacker: str = DEFAULT_ATTACKER,
    targets: list[str] | None = None,
    critic: str | None = None,
    rounds: int | None = None,
    langs: list[str] | None = None,
    limit: int | None = None,
    max_tokens: int = 96,
    seed: int = 0,
    group_size: int = 32,
    cache: bool = True,
) -> dict[str, Any]:
    """Run each adaptive attack (``pair``, ``tap?branching=3``, ``crescendo`` …) against each
    target of run ``run_id`` (default: every model it judged) on its base prompts (``limit``
    per language), judged by the run's critic; ``rounds`` overrides every attack's own.
    Resumable: a re-run continues each conversation after its last finished round."""
    settings = load_settings()
    spec = StoreSpec.of(ArtifactStore(settings.effective_store_url, settings))
    plan = adaptive_plan_task(spec, run_id, targets, critic)
    specs = [_with_rounds(a, rounds) if rounds is not None else get_adaptive(a).spec for a in attacks]
    loops = [
        loop
        for target in plan["targets"]
        for loop in adaptive_task(
            spec, run_id, target, specs, attacker, plan["critic"], langs, limit, max_tokens, seed, group_size, cache
        )
    ]
    report = metrics_task(spec, run_id, plan["critic_id"], plan["models"])
    return {"run_id": run_id, "critic": plan["critic"], "loops": loops, **report}


def _with_rounds(attack: str, rounds: int) -> str:
    """The attack's canonical spec with ``rounds`` set (a bad spec is a ConfigError here)."""
    return get_adaptive(attack, rounds=rounds).spec
