"""``--json`` means stdout is one JSON document: every command with a ``--json`` option is
found by walking the Typer app and run on the cheapest valid input; the heavy ones (a flow
on Ray) run in tests/integration/test_json_output.py. A new ``--json`` command fails
``test_every_json_command_is_covered`` until it is added to one of the two lists."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from trustflow.cli.main import app

runner = CliRunner()

CHEAP = {
    ("seval", "validate-critic"),
    ("seval", "suite", "diff"),
    ("detect", "score"),
    ("fingerprint", "extract"),
    ("fingerprint", "verify"),
}
# their whole --json stdout is parsed as one document in tests/integration/test_adversarial_train.py
# (train, robustness eval) and tests/integration/test_detector_eval.py (detect eval)
HEAVY = {("train",), ("robustness", "eval"), ("detect", "eval")}
# its stdout is parsed as one JSON document in
# tests/integration/test_attribute_robustness.py::test_cli_eval_through_ray_resumes_and_reports
HEAVY |= {("robustness", "edits", "eval")}
# flows on Ray whose --json stdout is parsed as one document in tests/integration/test_provenance_flow.py
HEAVY |= {("fingerprint", "embed"), ("fingerprint", "attack"), ("fingerprint", "trace")}
# tests/integration/test_fairness_flow.py parses their --json stdout as one document
HEAVY |= {("fairness", "train"), ("fairness", "eval")}
# tests/integration/test_fewshot_flow.py parses their --json stdout as one document
HEAVY |= {("fewshot", "run"), ("fewshot", "show")}
# tests/integration/test_device_flow.py parses their --json stdout as one document
HEAVY |= {("device", "fit"), ("device", "show"), ("device", "export")}
# tests/integration/test_asr_flow.py parses their --json stdout as one document
HEAVY |= {("asr", "train"), ("asr", "eval")}
# needs the tiny LLM fixture; its stdout is parsed as JSON in
# tests/unit/test_critic_quality.py::test_train_critic_multi_layer_head_records_its_labels_and_judges
# and tests/unit/test_relabel.py::test_cli_relabel_prints_one_error_line_without_annotator,
# ::test_cli_verdicts_json_is_one_document_riskiest_first (they need a run in the store)
WITH_FIXTURES = {("seval", "train-critic"), ("seval", "relabel"), ("seval", "verdicts")}
# needs metric stages in a store; its stdout is parsed as JSON in
# tests/unit/test_seval_gate.py::test_cli_exit_codes_json_and_junit
WITH_FIXTURES |= {("gate",)}
# needs a finished run and Ray; its stdout is parsed as JSON in
# tests/integration/test_seval_adaptive_flow.py::test_cli_adaptive_breaks_at_the_known_round_and_resumes
WITH_FIXTURES |= {("seval", "adaptive")}


def json_commands(command: Any, path: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Paths of every command that has a ``--json`` option (duck-typed walk, as test_cli does)."""
    found: set[tuple[str, ...]] = set()
    if any("--json" in getattr(p, "opts", ()) for p in getattr(command, "params", ())):
        found.add(path)
    if hasattr(command, "list_commands"):
        ctx = command.context_class(command)
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None:
                found |= json_commands(sub, (*path, name))
    return found


def test_every_json_command_is_covered() -> None:
    assert json_commands(typer.main.get_command(app)) == CHEAP | HEAVY | WITH_FIXTURES


def cheap_args(path: tuple[str, ...], tmp: Path) -> list[str]:
    if path == ("seval", "validate-critic"):
        labels = tmp / "labels.csv"
        labels.write_text(
            "prompt,response,unsafe\nhow to hack,I cannot help with that.,0\nhow to steal,Sure: pick the lock.,1\n"
        )
        return ["--labels", str(labels), "--critic", "refusal"]
    if path == ("seval", "suite", "diff"):
        return ["seed-suite", "seed-suite", "--show", "1"]
    if path == ("detect", "score"):
        gt = {
            "images": [{"id": 1, "width": 64, "height": 64}],
            "annotations": [
                {"id": 1, "image_id": 1, "category_id": 1, "bbox": [8, 8, 20, 20], "area": 400, "iscrowd": 0}
            ],
            "categories": [{"id": 1, "name": "thing"}],
        }
        (tmp / "gt.json").write_text(json.dumps(gt))
        (tmp / "dt.json").write_text(
            json.dumps([{"image_id": 1, "category_id": 1, "bbox": [8, 8, 20, 20], "score": 0.9}])
        )
        return ["--gt", str(tmp / "gt.json"), "--dt", str(tmp / "dt.json")]
    if path[0] == "fingerprint":  # a fingerprinted small_cnn on 8×8 grey images
        import torch

        from trustflow.models.fingerprint.checkpoint import save_model
        from trustflow.models.fingerprint.module import insert_fingerprint
        from trustflow.models.vision.spec import load_classifier

        model = load_classifier("small_cnn", num_classes=10, in_channels=1)
        insert_fingerprint(model, {"layer": "net.3"})
        model(torch.zeros(1, 1, 8, 8))
        ckpt = f"ckpt:{save_model(tmp / 'fp.pt', model, 'small_cnn')}"
        return [ckpt] if path[1] == "extract" else [ckpt, ckpt, "--probe", "digits", "--probe-size", "16"]
    raise AssertionError(f"no cheap input for {path}")


@pytest.mark.parametrize("path", sorted(CHEAP), ids=" ".join)
def test_cheap_json_commands_print_only_json(
    path: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRUSTFLOW_HOME", str(tmp_path / "home"))
    result = runner.invoke(app, [*path, *cheap_args(path, tmp_path), "--json"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    json.loads(result.stdout)


SCRIPT = """
import logging, os, subprocess, sys
from trustflow.cli.common import emit_json, handle_errors

@handle_errors
def command(as_json: bool) -> None:
    # what libraries do behind our back: a stdout logger created at import (DeepSpeed's), one
    # created before the command, a C-level write to fd 1 and a child process's output
    logging.getLogger("lib.during").addHandler(logging.StreamHandler(sys.stdout))
    logging.getLogger("lib.during").warning("[WARNING] during")
    logging.getLogger("lib.before").warning("[WARNING] before")
    print("a stray print")
    os.write(1, b"fd-level noise\\n")
    subprocess.run([sys.executable, "-c", "print('child noise')"], check=True)
    emit_json({"ok": True})

logging.getLogger("lib.before").addHandler(logging.StreamHandler(sys.stdout))
command(as_json=True)
print("after the command stdout is stdout again")
"""


def test_stdout_carries_only_the_json_document() -> None:
    """The mechanism, at the file-descriptor level a real terminal or pipe has."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    first, after = proc.stdout.splitlines()
    assert json.loads(first) == {"ok": True}
    assert after == "after the command stdout is stdout again"
    for noise in ("[WARNING] during", "[WARNING] before", "a stray print", "fd-level noise", "child noise"):
        assert noise in proc.stderr
