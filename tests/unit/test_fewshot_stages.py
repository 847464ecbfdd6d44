"""The few-shot flow's planning, leaderboard, plots and CLI checks, without Ray or a store
(the flow end to end: tests/integration/test_fewshot_flow.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from trustflow.errors import ConfigError
from trustflow.flows.fewshot import run_config
from trustflow.tasks.fewshot import plots
from trustflow.tasks.fewshot.stages import (
    edit_summary,
    leaderboard,
    markdown_table,
    plan_chunks,
    plan_units,
    row_key,
    run_id_of,
    set_name,
)

BASE: dict[str, Any] = {
    "methods": ["prototype", "safe"],
    "sets": ["digits", "lfw-subset"],
    "shots": [4, 1],
    "seeds": [0, 1],
    "backbone": "tiny_cnn?width=8",
    "epochs": 2,
    "n_query": 50,
    "robustness": True,
    "robust_n": 10,
    "corruptions": ["gaussian_noise"],
    "chunks_per_set": 2,
}


def cfg(**changes: Any) -> dict[str, Any]:
    return run_config(**{**BASE, **changes})


def test_units_are_every_combination_grouped_by_episode() -> None:
    units = plan_units(cfg())
    assert len(units) == 2 * 2 * 2 * 2
    keys = [row_key(u["method"], u["set"], u["k"], u["seed"]) for u in units]
    assert len(set(keys)) == 16
    # set → k (sorted) → seed → method: the methods of an episode are neighbours (one chunk shares it)
    assert keys[:4] == ["prototype|digits|1|0", "safe|digits|1|0", "prototype|digits|1|1", "safe|digits|1|1"]
    assert set_name("imagefolder:/data/eurosat/") == "imagefolder:eurosat"
    assert set_name("fashion-mnist:/x/y") == "fashion-mnist"


def test_chunks_cover_only_missing_units_per_set_with_stable_part_ids() -> None:
    units = plan_units(cfg())
    chunks = plan_chunks(units, set(), 2)
    assert len(chunks) == 4 and all(len(c.payload) == 4 for c in chunks)
    assert all(len({u["set"] for u in c.payload}) == 1 for c in chunks)
    assert [c.part_id for c in chunks] == [c.part_id for c in plan_chunks(units, set(), 2)]
    done = {row_key(u["method"], u["set"], u["k"], u["seed"]) for u in units if u["set"] == "digits"}
    left = plan_chunks(units, done, 2)
    assert {u["set"] for c in left for u in c.payload} == {"lfw-subset"} and len(left) == 2
    all_done = done | {row_key(u["method"], u["set"], u["k"], u["seed"]) for u in units}
    assert plan_chunks(units, all_done, 2) == []


def test_run_id_follows_the_units_and_settings_not_the_chunking() -> None:
    assert run_id_of(cfg()) == run_id_of(cfg(chunks_per_set=5))
    assert run_id_of(cfg()) != run_id_of(cfg(seeds=[0, 1, 2]))
    assert run_id_of(cfg()) != run_id_of(cfg(backbone="tiny_cnn?width=16"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"methods": ["nope"]}, "--methods"),
        ({"methods": ["safe?lr=abc"]}, "--methods"),
        ({"sets": ["cifar"]}, "--sets: unknown few-shot set 'cifar'"),
        ({"sets": ["imagefolder"]}, "--sets: 'imagefolder' needs a folder"),
        ({"shots": [0]}, "--shots"),
        ({"seeds": []}, "--seeds: give at least one"),
        ({"backbone": "resnet9000"}, "--backbone"),
        ({"corruptions": ["rain"]}, "--corruptions: unknown corruption 'rain'"),
        ({"robust_n": 0}, "--robust-n"),
    ],
)
def test_bad_config_is_one_error_naming_the_option(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("?", r"\?")):
        cfg(**change)


def _row(method: str, k: int, seed: int, acc: float, delta: float | None) -> dict[str, Any]:
    return {
        "method": method,
        "set": "digits",
        "k": k,
        "seed": seed,
        "accuracy": acc,
        "fit_seconds": 1.0,
        "robust_accuracy": None if delta is None else 0.5,
        "delta_attack": delta,
        "delta_corruption": None if delta is None else -delta,
        "mce_vs_baseline": None if delta is None else 1.0 + delta,
        "deltas": None if delta is None else json.dumps({"pgd": delta, "corruption": -delta}),
    }


def test_leaderboard_is_mean_and_std_over_seeds() -> None:
    rows = [_row("safe", 4, 0, 0.8, 0.1), _row("safe", 4, 1, 0.6, -0.1), _row("prototype", 4, 0, 0.5, 0.0)]
    rows.append(_row("prototype", 1, 0, 0.3, None))
    board = leaderboard(rows)
    assert [(r["method"], r["k"]) for r in board] == [("prototype", 1), ("safe", 4), ("prototype", 4)]
    safe = board[1]
    assert safe["seeds"] == 2 and safe["accuracy"] == pytest.approx(0.7) and safe["accuracy_std"] == pytest.approx(0.1)
    assert safe["delta_attack"] == pytest.approx(0.0) and safe["delta_attack_std"] == pytest.approx(0.1)
    assert safe["row_key"] == "safe|digits|4"
    assert board[0]["delta_attack"] is None and board[0]["mce_vs_baseline"] is None  # robustness off
    assert json.loads(safe["deltas"]) == pytest.approx({"corruption": 0.0, "pgd": 0.0}) and board[0]["deltas"] is None


def test_edit_deltas_are_averaged_over_seeds_then_attributes_and_shown() -> None:
    rows = [_row("safe", 4, s, 0.5, None) for s in (0, 1)]
    rows[0]["deltas"] = json.dumps(
        {"attr:size": -0.2, "drop:size": 0.1, "attr:background": 0.0, "drop:background": 0.3}
    )
    rows[1]["deltas"] = json.dumps({"attr:size": 0.0, "drop:size": 0.3, "attr:background": 0.2, "drop:background": 0.1})
    (cell,) = leaderboard(rows)
    assert edit_summary(cell) == pytest.approx((0.0, 0.2))
    assert edit_summary({"deltas": json.dumps({"pgd": 0.1})}) is None and edit_summary({}) is None
    table = "\n".join(markdown_table([cell]))
    assert "| digits | 4 | safe | +0.000 | +0.200 | background +0.200, size +0.200 |" in table


def test_plots_are_pngs_with_and_without_robustness() -> None:
    rows = [_row("safe", k, s, 0.5 + 0.1 * s, 0.01 * k) for k in (1, 4) for s in (0, 1)]
    board = leaderboard(rows)
    assert plots.accuracy_vs_shots(board)[:4] == b"\x89PNG"
    assert plots.accuracy_vs_robustness(board)[:4] == b"\x89PNG"
    off = leaderboard([_row("safe", 1, 0, 0.5, None)])
    assert plots.accuracy_vs_robustness(off)[:4] == b"\x89PNG"


def test_cli_bad_input_is_one_error_line_before_any_service(monkeypatch: pytest.MonkeyPatch) -> None:
    import trustflow.cli.fewshot as cli_fewshot
    from trustflow.cli.main import app

    def no_services() -> None:
        raise AssertionError("bootstrap ran before the input was checked")

    monkeypatch.setattr(cli_fewshot, "bootstrap", no_services)
    runner = CliRunner()
    for args, message in [
        (["--methods", "prototype,warp_drive"], "--methods"),
        (["--shots", "1,two"], "--shots: expected comma-separated integers"),
        (["--sets", "cifar"], "--sets: unknown few-shot set 'cifar'"),
        (["--edits", "a/b"], "--edits: 'a/b': name a stage"),
    ]:
        out = runner.invoke(app, ["fewshot", "run", *args])
        assert out.exit_code == 1, out.output
        lines = [line for line in out.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], out.output
    out = runner.invoke(app, ["fewshot", "show", "faireval-123"])
    assert out.exit_code == 1 and "not a fewshot_adapt run id" in out.output
