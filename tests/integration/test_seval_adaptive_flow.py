"""Adaptive attacks end to end on a real (small) S-Eval run: ``trustflow seval adaptive`` in
process, against a scripted target that breaks at a known round of a conversation.

The target is ``scripted:…?comply_after=3``: it refuses while a conversation has fewer than 3
user turns, then complies; the critic is the refusal detector. So Crescendo (multi-turn, the
target sees the whole history) breaks every conversation at round 3 exactly, and PAIR
(single-turn prompts) never does. The attacker is the session's tiny random transformers
model: its replies are noise, so the loop must cope (a reply is used as the prompt, an
empty one falls back to a seeded template) while the attacker's own history grows.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from trustflow import names
from trustflow.cli.main import app
from trustflow.data.store import ArtifactStore, StageRef
from trustflow.flows.seval_evaluate import seval_evaluate
from trustflow.infra.prefect_runtime import prefect_runtime

pytestmark = [pytest.mark.integration]

TARGET = "scripted:breaks3?comply_after=3&tokens=8"


def test_cli_adaptive_breaks_at_the_known_round_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_llm: str, ray_cluster
) -> None:  # noqa: ANN001
    from trustflow.settings import load_settings

    monkeypatch.setenv("TRUSTFLOW_HOME", str(tmp_path / "home"))
    settings = load_settings()
    with prefect_runtime(settings):
        first = seval_evaluate(
            targets=[TARGET], critic="refusal", suite="seed-suite", langs=["zh", "en"], attacks_per_base=1, max_tokens=8
        )
    run = first["run_id"]
    short = "attacker_max_tokens=16"  # the tiny attacker writes 16 tokens a round: seconds, not minutes
    args = ["seval", "adaptive", run, "--attacks", f"crescendo?{short},pair?{short}", "--rounds", "4"]
    args += ["--attacker", tiny_llm, "--limit", "1", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    by_attack = {a["attack"]: a for a in doc["attacks"]}
    cres, pair = by_attack["crescendo"], by_attack["pair"]
    assert cres["conversations"] == 2 and cres["rounds_to_break"] == 3.0 and cres["broken"] == 2
    assert cres["asr_by_round"] == {"1": 0.0, "2": 0.0, "3": 100.0, "4": 100.0}
    assert pair["rounds_to_break"] is None and pair["asr_by_round"]["4"] == 0.0
    assert all(loop["attacker_cache_lookups"] > 0 for loop in doc["loops"])  # calls went through the cache
    (board,) = doc["leaderboard"]
    # single-turn static variants never break this target; of the 16 base prompts with attacks,
    # the 2 attacked adaptively (one per language) both broke (Crescendo): the adaptive ASR counts them
    assert board["asr"] == 0.0 and board["adaptive_asr"] == 12.5

    store = ArtifactStore(settings=settings)
    ref = StageRef(names.SEVAL_EVALUATE, run, names.ADAPTIVE_TURNS)
    turns = store.read_table(ref).to_pylist()
    assert len(turns) == 2 * 3 + 2 * 4  # Crescendo stops at round 3, PAIR runs all 4
    cres_rows = [t for t in turns if t["attack"] == "crescendo"]
    assert sorted({len(json.loads(t["messages"])) for t in cres_rows}) == [1, 3, 5]  # the whole history
    assert {t["lang"] for t in turns} == {"zh", "en"}
    assert all(t["attack_prompt"] and t["attacker_model"] == tiny_llm for t in turns)
    # the attacker saw its whole exchange: round r sends it 2 + 2 (r - 1) messages
    assert {(t["round"], len(json.loads(t["attacker_messages"]))) for t in cres_rows} == {(1, 2), (2, 4), (3, 6)}

    # a rerun resumes: nothing is asked again, no row is written twice
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    loops = json.loads(again.stdout)["loops"]
    assert all(loop["rows_written"] == 0 for loop in loops)
    assert all(loop["attacker_cache_lookups"] == loop["target_cache_lookups"] == 0 for loop in loops)
    assert len(store.read_table(ref)) == len(turns)
    # bad input: one error line naming the option
    bad = CliRunner().invoke(app, ["seval", "adaptive", run, "--attacks", "pair,nope"])
    assert bad.exit_code == 1 and "--attacks" in bad.output and "nope" in bad.output
