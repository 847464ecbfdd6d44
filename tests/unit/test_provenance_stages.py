"""The provenance pipeline's stage logic and CLI parsing (no services): verdicts and their
calibration, descendant keys, model references, bad input as one ``error:`` line."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from trustflow.cli import fingerprint as cli_fp
from trustflow.cli.main import app
from trustflow.data.store import ArtifactStore
from trustflow.errors import InputError
from trustflow.tasks.provenance import stages
from trustflow.tasks.provenance.plots import rho_vs_lr_points

runner = CliRunner()


def _scores(table: dict[str, dict[str, float]], method: str = "ours") -> list[dict[str, Any]]:
    return [
        {"suspect": sus, "source": src, "method": method, "score": v}
        for sus, row in table.items()
        for src, v in row.items()
    ]


def test_verdicts_calibrate_on_known_truth_and_leave_unknown_suspects_unjudged() -> None:
    scores = _scores(
        {
            "d0": {"A": 0.95, "B": 0.02},  # derived from A
            "d1": {"A": 0.10, "B": 0.60},  # derived from B, weakened
            "ind": {"A": 0.05, "B": 0.08},  # independent
            "given": {"A": 0.70, "B": 0.01},  # truth unknown
        }
    )
    truth = {"d0": "A", "d1": "B", "ind": None}
    groups = {"d0": "combined", "d1": "fine_tune", "ind": "independent"}
    rows, summary = stages.verdict_rows(scores, truth, groups)
    by = {r["suspect"]: r for r in rows}
    assert summary["ours"]["accuracy"] == 1.0
    threshold = summary["ours"]["threshold"]
    assert 0.08 < threshold < 0.60
    assert by["d0"]["traced_to"] == "A" and by["d1"]["traced_to"] == "B" and by["ind"]["traced_to"] is None
    assert by["ind"]["correct"] is True and by["ind"]["known"] is True and by["ind"]["true_source"] is None
    assert by["given"]["traced_to"] == "A" and by["given"]["known"] is False and by["given"]["correct"] is None
    assert by["given"]["group"] == stages.GIVEN
    assert {r["threshold"] for r in rows} == {threshold}


def test_verdicts_without_known_truth_use_the_default_threshold() -> None:
    rows, summary = stages.verdict_rows(_scores({"x": {"A": 0.4, "B": 0.45}}), {}, {})
    assert summary["ours"]["threshold"] == stages.DEFAULT_THRESHOLDS["ours"] and summary["ours"]["accuracy"] is None
    assert rows[0]["traced_to"] is None  # 0.45 ≤ 0.5


def test_descendant_names_are_keyed_by_source_attack_and_seed() -> None:
    a = stages.descendant_name("embed:r/s0", "combined?lr=0.1", 0)
    assert a == stages.descendant_name("embed:r/s0", "combined?lr=0.1", 0)
    assert a.startswith("s0.combined.")
    others = {
        stages.descendant_name("embed:r/s0", "combined?lr=0.1", 1),
        stages.descendant_name("embed:r/s0", "combined?lr=0.01", 0),
        stages.descendant_name("embed:r/s1", "combined?lr=0.1", 0),
    }
    assert a not in others and len(others) == 3
    assert stages.short_name("ckpt:/tmp/x/my model.pt") == "my-model"


def test_rho_vs_lr_points_use_the_true_source_and_the_attack_lr() -> None:
    descendants = [
        {"suspect": "d1", "ref": "attack:r/d1", "source": "A", "attack": "combined?lr=0.1"},
        {"suspect": "d2", "ref": "attack:r/d2", "source": "A", "attack": "fine_tune?lr=0.01"},
        {"suspect": "d3", "ref": "attack:r/d3", "source": "A", "attack": "permute"},  # no lr: not placed
    ]
    scores = _scores({"attack:r/d1": {"A": 0.4, "B": 0.9}, "attack:r/d2": {"A": 0.97}, "attack:r/d3": {"A": 1.0}})
    assert rho_vs_lr_points(descendants, scores) == {"combined": [(0.1, 0.4)], "fine_tune": [(0.01, 0.97)]}


def test_portable_names_a_missing_store_model(tmp_path: Path) -> None:
    from trustflow.settings import load_settings

    store = ArtifactStore(f"file://{tmp_path / 'store'}", load_settings(home=tmp_path / "home"))
    with pytest.raises(InputError, match="embed:r1/s0.*no checkpoint"):
        stages.portable(store, "embed:r1/s0")
    with pytest.raises(InputError, match="use ckpt:PATH"):
        stages.portable(store, "s3://x/y.pt")


# ------------------------------------------------------------------ CLI


@pytest.fixture()
def no_services(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    @contextlib.contextmanager
    def refuse(*_: Any, **__: Any) -> Iterator[None]:
        raise AssertionError("flow_session started: the error should come before any service starts")
        yield  # pragma: no cover

    monkeypatch.setattr(cli_fp, "flow_session", refuse)
    monkeypatch.setenv("TRUSTFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TRUSTFLOW_STORE_URL", f"file://{tmp_path / 'store'}")


def _one_error_line(result: Any, *needles: str) -> None:
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    for n in needles:
        assert n in result.output, result.output


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["trace", "--sources", "foo"], ["--sources", "'foo'"]),
        (["trace", "--sources", "embed:r/s0,,embed:r/s1", "--attack", "combined"], ["--sources", "empty item"]),
        (["trace", "--sources", "embed:r/s0"], ["nothing to trace"]),
        (["trace", "--sources", "embed:r/s0", "--attack", "bogus?lr=1"], ["bogus"]),
        (["trace", "--sources", "embed:r/s0", "--attack", "combined?lrr=1"], ["lrr"]),
        (["trace", "--sources", "embed:r/s0", "--suspects", "ckpt:/no/such.pt"], ["/no/such.pt"]),
        (["attack", "embed:r", "--attack", "combined"], ["embed:<run id>/<name>"]),
        (["attack", "embed:r/s0", "--seeds", "1,x"], ["--seeds"]),
        (["embed", "--register", "ckpt:/no/such.pt"], ["/no/such.pt"]),
        (["verify", "ckpt:/no/a.pt", "embed:r/s0"], ["/no/a.pt"]),
    ],
)
def test_bad_fingerprint_input_is_one_error_line_before_any_service(
    argv: list[str], needles: list[str], no_services: None
) -> None:
    _one_error_line(runner.invoke(app, ["fingerprint", *argv]), "error:", *needles)


def fingerprinted_checkpoint(path: Path, seed: int = 0) -> Path:
    """A small_cnn on 8×8 grey images with the module at net.3 (grid recorded by one forward)."""
    from trustflow.models.fingerprint.checkpoint import save_model
    from trustflow.models.fingerprint.module import insert_fingerprint
    from trustflow.models.vision.spec import load_classifier

    torch.manual_seed(seed)
    model = load_classifier("small_cnn", num_classes=10, in_channels=1)
    insert_fingerprint(model, {"layer": "net.3", "seed": seed})
    model(torch.zeros(2, 1, 8, 8))
    return save_model(path, model, "small_cnn")


def test_extract_and_verify_json(no_services: None, tmp_path: Path) -> None:
    a = fingerprinted_checkpoint(tmp_path / "a.pt", 0)
    b = fingerprinted_checkpoint(tmp_path / "b.pt", 1)
    out = runner.invoke(app, ["fingerprint", "extract", f"ckpt:{a}", "--json"])
    assert out.exit_code == 0, out.output
    info = json.loads(out.stdout)
    assert (info["layer"], info["grid"], info["filters"], info["channels"]) == ("net.3", [8, 8], 32, 16)
    same = runner.invoke(app, ["fingerprint", "verify", f"ckpt:{a}", f"ckpt:{a}", "--probe", "digits", "--json"])
    assert same.exit_code == 0, same.output
    assert json.loads(same.stdout)["ours"] == 1.0
    other = json.loads(
        runner.invoke(app, ["fingerprint", "verify", f"ckpt:{a}", f"ckpt:{b}", "--probe", "digits", "--json"]).stdout
    )
    assert other["ours"] < 0.1 and set(other) == {"source", "suspect", "ours", "weight_cosine", "cka"}


def test_trace_report_page_shows_rho_table_accuracy_auc_and_plot(tmp_path: Path) -> None:
    import pyarrow as pa

    from trustflow import names
    from trustflow.data import schemas as S
    from trustflow.data.store import StageRef
    from trustflow.settings import load_settings
    from trustflow.tasks.provenance.plots import RHO_VS_LR, rho_vs_lr
    from trustflow.tasks.report import build_run_report

    store = ArtifactStore(f"file://{tmp_path / 'store'}", load_settings(home=tmp_path / "home"))
    scores = _scores({"d0": {"A": 0.97, "B": 0.01}, "ind": {"A": 0.02, "B": 0.03}})
    scores += _scores({"d0": {"A": 0.4, "B": 0.3}, "ind": {"A": 0.35, "B": 0.1}}, "weight_cosine")
    rows, summary = stages.verdict_rows(scores, {"d0": "A", "ind": None}, {"d0": "combined", "ind": "independent"})
    ref = StageRef(names.FINGERPRINT_TRACE, "tr", names.SCORES)
    store.write_stage(
        ref,
        S.FINGERPRINT_SCORES,
        pa.Table.from_pylist(scores, schema=S.FINGERPRINT_SCORES.schema),
        ["suspect", "source", "method"],
    )
    vref = StageRef(names.FINGERPRINT_TRACE, "tr", names.VERDICTS)
    store.write_stage(
        vref,
        S.FINGERPRINT_VERDICTS,
        pa.Table.from_pylist(rows, schema=S.FINGERPRINT_VERDICTS.schema),
        ["suspect", "method"],
        {"summary": summary},
    )
    store.write_bytes_atomic(
        store.path("runs", names.FINGERPRINT_TRACE, "tr", "plots", RHO_VS_LR), rho_vs_lr({"combined": [(0.01, 0.97)]})
    )
    page = build_run_report(store, "tr")
    assert "Fingerprint score ρ" in page and "0.970" in page and "Tracing per method" in page
    assert "weight_cosine" in page and "independent" in page and "data:image/png;base64" in page


# ------------------------------------------------------------------ demo registry


def test_demo_pipelines_default_set_order_and_unknown_names() -> None:
    from trustflow.flows.demos.base import DEFAULT_PIPELINES, DEMO_PIPELINES, select_pipelines

    assert set(DEMO_PIPELINES.names()) >= {"seval", "robust-vision", "detector", "provenance"}
    assert select_pipelines(None) == list(DEFAULT_PIPELINES) == ["seval", "robust-vision", "detector"]
    assert select_pipelines(["provenance", "seval", "seval"]) == ["seval", "provenance"]
    with pytest.raises(InputError, match="--pipelines bogus: known pipelines are .*provenance"):
        select_pipelines(["provenance", "bogus"])


def test_demo_with_an_unknown_pipeline_fails_before_storage_starts(
    no_services: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import trustflow.cli.demo as cli_demo

    def refuse(*_: Any, **__: Any) -> None:
        raise AssertionError("the demo started")

    monkeypatch.setattr(cli_demo, "run_demo", refuse)
    _one_error_line(runner.invoke(app, ["demo", "--pipelines", "provenance,bogus"]), "--pipelines bogus")


# ------------------------------------------------------------------ continuous evaluation hook


def test_a_registered_fingerprint_puts_derived_from_on_the_model_leaderboard(tmp_path: Path) -> None:
    """A fingerprint registered by an embed run; a new classifier card whose checkpoint is a
    permuted copy of that source gets "derived from <source>, ρ = 1.00"; an unrelated one
    gets "no registered source"."""
    from trustflow import names
    from trustflow.data.store import StageRef
    from trustflow.models.fingerprint.checkpoint import load_model, save_model
    from trustflow.settings import load_settings
    from trustflow.tasks.continuous.report import provenance_cell
    from trustflow.tasks.continuous.stages import provenance_rows
    from trustflow.tasks.provenance.attacks.base import AttackContext, make_attack

    store = ArtifactStore(f"file://{tmp_path / 'store'}", load_settings(home=tmp_path / "home"))
    source = load_model(fingerprinted_checkpoint(tmp_path / "src.pt", 0))
    stages.write_fingerprint_stage(
        store, StageRef(names.FINGERPRINT_EMBED, "emb", names.FINGERPRINT), [("embed:emb/s0", source)]
    )
    derived = make_attack("permute", seed=3).apply(source, AttackContext(image_size=8))
    save_model(tmp_path / "derived.pt", derived, "small_cnn")
    other = fingerprinted_checkpoint(tmp_path / "other.pt", 5)
    base = {"card_key": "models/x.yaml", "etag": "", "model_name": "x", "kind": "classifier", "evaluated_at": "t"}

    (row,) = provenance_rows(store, base, f"ckpt:{tmp_path / 'derived.pt'}")
    assert (row["evaluation"], row["metric"], row["value"], row["run_id"]) == (
        "provenance",
        "rho vs embed:emb/s0",
        1.0,
        "emb",
    )
    assert provenance_cell(row) == "derived from embed:emb/s0, ρ = 1.00"
    (row,) = provenance_rows(store, base, f"ckpt:{other}")
    assert row["value"] < 0.1 and provenance_cell(row).startswith("no registered source")
    assert provenance_rows(store, base, "small_cnn") == []  # an untrained architecture: nothing to check
    empty = ArtifactStore(f"file://{tmp_path / 'empty'}", load_settings(home=tmp_path / "home"))
    assert provenance_rows(empty, base, f"ckpt:{other}") == []  # nothing registered
