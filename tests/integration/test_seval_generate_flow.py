"""Suite generation end to end: real SmolLM2 tester, real e5 selection, Ray actors, Prefect.

The reference panel is a tiny random model judged by the refusal detector (mechanics of the
hardness stage in seconds); the tester is the real packaged SmolLM2-135M, so parsing,
selection and translation see real tester output.
"""

from __future__ import annotations

import json

import pyarrow.compute as pc
import pytest

from trustflow.data.schemas import SEVAL_GENERATED_SUITE
from trustflow.data.store import ArtifactStore, StageRef
from trustflow.flows.seval_evaluate import seval_evaluate
from trustflow.flows.seval_generate import seval_generate_suite
from trustflow.infra.prefect_runtime import prefect_runtime
from trustflow.tasks.seval.suite_diff import diff_suites

pytestmark = [pytest.mark.integration]

LEAVES = [
    "cybersecurity.access_control.credential_theft.password_cracking",
    "crimes.drugs.trafficking.smuggling_routes",
]


def test_generate_select_translate_attack_then_evaluate_and_resume(local_settings, tiny_llm: str, ray_cluster) -> None:  # noqa: ANN001
    # SmolLM2-135M writes few real questions: the request check is relaxed here (a selection
    # config, as a user would pass) so the rest of the pipeline has rows to work on
    selection = [
        {"name": "quality", "require_request": False},
        {"name": "minhash_dedup"},
        {"name": "near_dedup"},
        {"name": "hardness"},
        {"name": "diversity", "k": 1},
        {"name": "balance", "per_group": 1},
    ]
    kwargs = dict(
        leaves=LEAVES,
        per_leaf=4,
        keep=1,
        selection=selection,
        langs=["en", "zh"],
        tester="pkg:smollm2-135m",
        critic="refusal",
        refs=[tiny_llm],
        attacks=["positive_induction", "instruction_encryption"],
        seed=1,
        max_tokens=128,
        ref_max_tokens=8,
    )
    with prefect_runtime(local_settings):
        first = seval_generate_suite(**kwargs)
    store = ArtifactStore(settings=local_settings)
    suite_id = first["suite_id"]
    generated = first["generated"]
    assert generated["tester_calls"] >= 2 and generated["tester_refusals"] == 0  # SmolLM2 does not refuse
    candidates = store.read_table(StageRef("seval_generate", suite_id, "candidates"))
    assert candidates.num_rows >= 1 and set(candidates["lang"].to_pylist()) == {"en"}  # written in the first language
    assert all(leaf.startswith(tuple(LEAVES)) for leaf in candidates["leaf_id"].to_pylist())

    manifest = store.require_manifest(StageRef("seval_generate", suite_id, "suite"))
    assert manifest.attrs["suite_id"] == suite_id and manifest.attrs["strategy_config_hash"]
    assert [s["name"] for s in manifest.attrs["selection"]][-1] == "balance"
    suite = store.read_table(StageRef("seval_generate", suite_id, "suite"))
    assert suite.schema.equals(SEVAL_GENERATED_SUITE.with_metadata(), check_metadata=False)
    base = suite.filter(pc.equal(suite["set"], "base_risk")).to_pylist()
    originals = [b for b in base if b["from_id"] is None]
    assert 1 <= len(originals) <= 2  # at most `keep` (1) per leaf
    assert all(
        b["generator"] == "pkg:smollm2-135m" and b["hardness"] is not None for b in originals
    )  # the panel answered
    assert all("per_ref" in json.loads(b["scores"]) for b in originals)
    for t in (b for b in base if b["from_id"] is not None):  # translations link back to a kept original
        assert t["lang"] == "zh" and t["from_id"] in {o["prompt_id"] for o in originals}
    attacks = suite.filter(pc.equal(suite["set"], "attack")).to_pylist()
    assert len(attacks) == 2 * len(base)  # every kept base prompt gets both attacks
    assert {a["base_id"] for a in attacks} == {b["prompt_id"] for b in base}

    drops = store.read_table(StageRef("seval_generate", suite_id, "selection_drops")).to_pylist()
    kept_ids = {b["prompt_id"] for b in originals}
    assert kept_ids.isdisjoint({d["prompt_uid"].split(":", 2)[2] for d in drops})
    assert all(d["reason"] and d["strategy"] for d in drops)
    assert len(kept_ids) + len({d["prompt_uid"] for d in drops}) == candidates.num_rows  # every candidate accounted for

    with prefect_runtime(local_settings):  # same parameters: resumes, nothing regenerated or duplicated
        again = seval_generate_suite(**kwargs)
    assert again["suite_id"] == suite_id
    assert store.read_table(StageRef("seval_generate", suite_id, "suite")).num_rows == suite.num_rows
    assert store.read_table(StageRef("seval_generate", suite_id, "candidates")).num_rows == candidates.num_rows

    with prefect_runtime(local_settings):  # the generated suite is evaluable as-is
        result = seval_evaluate(
            targets=[tiny_llm], critic="refusal", suite=suite_id, langs=["en", "zh"], max_tokens=8, batch_size=8
        )
    assert result["suite"] == {"rows": suite.num_rows, "source": suite_id}
    assert diff_suites(suite_id, suite, suite_id, suite).added == []
