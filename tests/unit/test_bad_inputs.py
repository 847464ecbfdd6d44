"""Bad and hostile inputs found by the outside probe (issue 12): each fails early, with one
line that names the user's file or option, and never runs or reads what it must not.

CLI cases replace ``flow_session`` with a function that fails the test: the errors must come
before Prefect or Ray start (a missing file used to cost a Ray start-up, a bad option 58 s).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from trustflow.cli import main as cli_main
from trustflow.cli import robust as cli_robust
from trustflow.cli.main import app
from trustflow.data.store import ArtifactStore
from trustflow.data.synthetic_coco import make_synthetic_coco
from trustflow.errors import ConfigError, InputError
from trustflow.models.vision.resolve import PortableModel, run_checkpoint_path
from trustflow.models.vision.spec import load_classifier, save_checkpoint
from trustflow.settings import Settings

runner = CliRunner()


class _Marker:
    """Unpickling this calls ``open(marker, "w")``: the file appears iff the pickle ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def hostile_checkpoint(path: Path, marker: Path) -> Path:
    """A checkpoint-shaped file whose pickle would create ``marker`` if it were unpickled."""
    torch.save({"arch": "small_cnn", "meta": _Marker(marker), "state_dict": {}}, path)
    return path


@pytest.fixture()
def no_services(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to start Prefect/Ray (``flow_session``) fails the test."""

    @contextlib.contextmanager
    def refuse(*_: Any, **__: Any) -> Iterator[None]:
        raise AssertionError("flow_session started: the error should come before any service starts")
        yield  # pragma: no cover

    monkeypatch.setattr(cli_robust, "flow_session", refuse)
    monkeypatch.setattr(cli_main, "flow_session", refuse)


def assert_clean_error(result: Any, *needles: str) -> str:
    """One ``error:`` line, no traceback, a non-zero exit by ``typer.Exit`` (not a crash)."""
    output = result.output
    assert result.exit_code != 0, output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in output
    for needle in needles:
        assert needle in output, output
    return output


# ------------------------------------------------------------------ item 2: a missing checkpoint


def test_eval_with_missing_checkpoint_is_one_line_naming_the_file(no_services: None) -> None:
    result = runner.invoke(app, ["robustness", "eval", "--model", "ckpt:/no/such/file.pt", "--attacks", "clean"])
    assert_clean_error(result, "error:", "/no/such/file.pt", "not found")


def test_eval_with_missing_torchscript_is_one_line_naming_the_file(no_services: None) -> None:
    result = runner.invoke(app, ["robustness", "eval", "--model", "torchscript:/no/such/net.ts"])
    assert_clean_error(result, "/no/such/net.ts", "not found")


# ------------------------------------------------------------------ item 3: an unsafe checkpoint


def test_eval_refuses_a_hostile_checkpoint_under_the_users_path(tmp_path: Path, no_services: None) -> None:
    marker = tmp_path / "PWNED"
    evil = hostile_checkpoint(tmp_path / "evil.pt", marker)
    result = runner.invoke(app, ["robustness", "eval", "--model", f"ckpt:{evil}"])
    output = assert_clean_error(result, str(evil), "not a safe weights-only checkpoint", "Accepted:")
    assert not marker.exists(), "the pickle payload ran"
    assert "weights_only=False" not in output and "weights_only` set to `False" not in output
    assert "add_safe_globals" not in output and "model.pt" not in output


def test_a_hostile_run_checkpoint_is_named_by_its_store_location(local_settings: Settings, tmp_path: Path) -> None:
    """The store copy path: ``run:`` checkpoints are copied to a temporary file before loading;
    the error names the checkpoint in the store, never the copy."""
    store = ArtifactStore(settings=local_settings)
    marker = tmp_path / "PWNED"
    store.write_bytes_atomic(
        run_checkpoint_path(store, "evil", "best"), hostile_checkpoint(tmp_path / "x.pt", marker).read_bytes()
    )
    with pytest.raises(InputError) as info:
        portable = PortableModel.of(store, "run:evil")
        with portable.local_spec() as spec:  # what a Ray worker does with it
            load_classifier(spec, num_classes=10, in_channels=1)
    message = str(info.value)
    assert "runs/adversarial_train/evil/model/best.pt" in message and store.url in message
    assert "not a safe weights-only checkpoint" in message and "weights_only" not in message.split("Accepted")[0]
    assert "model.pt" not in message.replace("best.pt", "") and "evil-best.pt" not in message
    assert not marker.exists()


def test_worker_errors_name_the_users_file_not_the_temporary_copy(local_settings: Settings, tmp_path: Path) -> None:
    model = load_classifier("small_cnn?width=4", 10, 1)
    path = save_checkpoint(tmp_path / "mine.pt", model, "small_cnn?width=4")
    portable = PortableModel.of(ArtifactStore(settings=local_settings), f"ckpt:{path}")
    with pytest.raises(ConfigError) as info, portable.local_spec() as spec:
        assert str(path) not in spec  # the worker really loads a copy
        load_classifier(spec, num_classes=3, in_channels=1)
    assert str(path) in str(info.value) and "model.pt" not in str(info.value)
    assert "checkpoint has 10 classes" in str(info.value)


def test_weights_files_never_suggest_unsafe_loading(tmp_path: Path) -> None:
    from trustflow.models.detection.torchvision_det import read_state_dict
    from trustflow.models.vision.architectures import _read_state_dict as read_timm_weights  # timm:…?weights=

    marker = tmp_path / "PWNED"
    evil = hostile_checkpoint(tmp_path / "weights.pt", marker)
    for load in (
        lambda: read_timm_weights(evil),
        lambda: read_state_dict(evil),
    ):
        with pytest.raises(InputError) as info:
            load()
        assert str(evil) in str(info.value) and "not a safe weights-only checkpoint" in str(info.value)
        assert "weights_only` set to `False" not in str(info.value) and "add_safe_globals" not in str(info.value)
    assert not marker.exists()


def test_a_truncated_checkpoint_is_named(tmp_path: Path) -> None:
    model = load_classifier("small_cnn?width=4", 10, 1)
    path = save_checkpoint(tmp_path / "cut.pt", model, "small_cnn?width=4")
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(InputError, match=r"cut\.pt: not a readable weights-only torch file") as info:
        load_classifier(f"ckpt:{path}")
    assert "Accepted:" in str(info.value)


# ------------------------------------------------------------------ the ingest command's options


def test_on_invalid_is_checked_before_anything_starts(tmp_path: Path, no_services: None) -> None:
    root = make_synthetic_coco(tmp_path / "coco", n_images=2)
    result = runner.invoke(app, ["ingest", str(root), "--kind", "coco", "--on-invalid", "ignore"])
    assert result.exit_code == 2, result.output  # a usage error
    assert "--on-invalid" in result.output and "'error'" in result.output and "'drop'" in result.output
    assert "on_invalid" not in result.output.replace("--on-invalid", "")


def test_on_invalid_drop_is_refused_for_kinds_without_entries_to_drop(tmp_path: Path, no_services: None) -> None:
    result = runner.invoke(app, ["ingest", str(tmp_path), "--kind", "seval", "--on-invalid", "drop"])
    assert_clean_error(result, "--on-invalid drop", "'seval'")


def test_drops_are_printed_with_their_reasons() -> None:
    info = {
        "dataset_id": "coco-0123",
        "dropped": 3,
        "drops": {"default/val": {"image_file_missing": 1, "annotation_of_dropped_image": 2}},
    }
    import io

    from rich.console import Console

    buffer = io.StringIO()
    original = cli_main.err_console
    cli_main.err_console = Console(file=buffer, width=200)
    try:
        cli_main.print_drops(info)
        cli_main.print_drops({"dataset_id": "x", "drops": {}})  # nothing dropped: nothing printed
    finally:
        cli_main.err_console = original
    text = buffer.getvalue()
    assert "dropped 3 invalid entries" in text and "image_file_missing=1" in text
    assert "annotation_of_dropped_image=2" in text and "default/val" in text and text.count("invalid entries") == 1


# ------------------------------------------------------------------ item 4: empty sources, before Ray


def test_empty_sources_are_errors_and_nothing_is_written(local_settings: Settings, tmp_path: Path) -> None:
    from trustflow.tasks.ingest import INGESTERS

    store = ArtifactStore(settings=local_settings)
    seval = tmp_path / "seval"
    seval.mkdir()
    (seval / "S-Eval_base_risk_en_x.jsonl").write_bytes(b"")
    with pytest.raises(InputError, match=r"S-Eval_base_risk_en_x\.jsonl: the file is empty"):
        INGESTERS.create("seval")(store, "seval-empty", seval)

    coco = make_synthetic_coco(tmp_path / "coco", n_images=2)
    ann = coco / "annotations" / "instances_val.json"
    doc = json.loads(ann.read_text())
    doc["images"], doc["annotations"] = [], []
    ann.write_text(json.dumps(doc))
    with pytest.raises(InputError, match=r"coco: no images in .*instances_val\.json"):
        INGESTERS.create("coco")(store, "coco-empty", coco)

    doc = json.loads((make_synthetic_coco(tmp_path / "coco2", n_images=2) / ann.relative_to(coco)).read_text())
    for img in doc["images"]:
        img["file_name"] = "gone.png"
    (tmp_path / "coco2" / ann.relative_to(coco)).write_text(json.dumps(doc))
    with pytest.raises(InputError, match="every image was dropped"):
        INGESTERS.create("coco", on_invalid="drop")(store, "coco-dropped", tmp_path / "coco2")

    (tmp_path / "folder" / "cat").mkdir(parents=True)
    (tmp_path / "folder" / "cat" / "notes.txt").write_text("no images here")
    with pytest.raises(InputError, match="folder: no images"):
        INGESTERS.create("imagefolder")(store, "folder-empty", tmp_path / "folder")
    assert store.list_stages() == []


def test_no_rows_refuses_the_commit() -> None:
    from trustflow.tasks.ingest.common import require_rows

    with pytest.raises(InputError, match="src: no images found"):
        require_rows({"chunks": 0, "chunks_skipped": 0, "rows_written": 0, "rows_skipped": 0}, Path("src"), "images")
    require_rows({"chunks": 1, "chunks_skipped": 1, "rows_written": 0, "rows_skipped": 0}, Path("src"), "images")
    require_rows({"chunks": 1, "chunks_skipped": 0, "rows_written": 0, "rows_skipped": 4}, Path("src"), "images")


# ------------------------------------------------------------------ item 5: the dataset id covers images


def test_changing_one_image_changes_the_dataset_id(tmp_path: Path) -> None:
    from trustflow.data.sources import fingerprint
    from trustflow.tasks.ingest import dataset_id_for

    root = make_synthetic_coco(tmp_path / "coco", n_images=3)
    before = dataset_id_for("coco", fingerprint(root))
    image = root / "val" / "000002.png"
    data = bytearray(image.read_bytes())
    data[-20] ^= 0xFF  # same size, one byte different
    image.write_bytes(bytes(data))
    assert dataset_id_for("coco", fingerprint(root)) != before


def test_the_hostile_fixture_really_runs_its_payload_when_unpickled(tmp_path: Path) -> None:
    """Guard for this module's own fixture: the marker tests above are meaningful only if an
    unsafe load of the hostile file would create it."""
    marker = tmp_path / "ran"
    evil = hostile_checkpoint(tmp_path / "evil.pt", marker)
    assert evil.stat().st_size > 0 and not marker.exists()
    with contextlib.suppress(Exception):
        torch.load(evil, weights_only=False)  # the unsafe load this project never does
    assert marker.exists()


def test_the_drop_policy_changes_the_dataset_id() -> None:
    """A strict ingest must never find (and return as "unchanged") a lenient one of the same bytes."""
    from trustflow.tasks.ingest.stages import dataset_id_from

    fp = "ab" * 32
    assert dataset_id_from("coco", fp) == f"coco-{fp[:16]}"  # ids of strict ingests are unchanged
    assert dataset_id_from("coco", fp + "|drop") != dataset_id_from("coco", fp)


def test_kind_specs_carry_checked_options() -> None:
    """``espeak?seed=1`` is a kind with options (as docs/pipelines/asr.md shows): the name and
    the canonical spec come back, defaults are dropped, a bad option names the field."""
    from trustflow.errors import ConfigError
    from trustflow.tasks.ingest.stages import kind_spec

    assert kind_spec("espeak") == ("espeak", "espeak")
    assert kind_spec("espeak?seed=0") == ("espeak", "espeak")  # the default: the same dataset
    assert kind_spec("espeak?per_sentence=2&seed=1") == ("espeak", "espeak?per_sentence=2&seed=1")
    with pytest.raises(ConfigError, match="seed"):
        kind_spec("espeak?seed=x")
    with pytest.raises(ConfigError, match="parquet-soup"):
        kind_spec("parquet-soup?x=1")


def test_cli_ingest_rejects_a_bad_kind_option_in_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from trustflow.cli.main import app

    out = CliRunner().invoke(app, ["ingest", str(tmp_path), "--kind", "espeak?per_sentence=0"])
    lines = [ln for ln in out.output.splitlines() if ln.strip()]
    assert out.exit_code != 0 and len(lines) == 1 and lines[0].startswith("error:") and "per_sentence" in lines[0], (
        out.output
    )
