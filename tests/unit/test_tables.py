"""Leaderboards stay readable at 80 columns: short model names, numbers never crushed."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from trustflow.cli import seval as seval_cli
from trustflow.cli.tables import board_table, display_names, parse_aliases, short_spec
from trustflow.errors import InputError

LONG = "openai:http://127.0.0.1:8123/v1#/home/someone/.cache/trustflow/llm/converted/smollm2-135m-instruct-hf"
OTHER = "openai:http://127.0.0.1:8124/v1#/srv/models/a/very/deep/directory/tree/qwen2.5-1.5b-instruct"


def _row(model: str, base: float) -> dict:
    row: dict = {"model": model, "judgements": 48}
    for k, v in (("safety_score", base), ("asr", 100 - base), ("adaptive_asr", 100.0), ("judge_error_rate", 0.0)):
        row[k], row[f"{k}_ci_low"], row[f"{k}_ci_high"] = v, max(0.0, v - 12), min(100.0, v + 12)
    return row


def _render(monkeypatch: pytest.MonkeyPatch, rows: list[dict], aliases: dict[str, str] | None = None) -> str:
    out = io.StringIO()
    monkeypatch.setattr(seval_cli, "console", Console(file=out, width=80, color_system=None, legacy_windows=False))
    seval_cli.print_seval_leaderboard(rows, aliases)
    return out.getvalue()


def _first_column(text: str) -> str:
    """The model column's text, its folded lines joined."""
    return "".join(line.split("│")[1].strip() for line in text.splitlines() if line.startswith("│"))


def test_leaderboard_at_80_columns_shows_every_number_and_a_short_name(monkeypatch: pytest.MonkeyPatch) -> None:
    text = _render(monkeypatch, [_row(LONG, 62.5), _row(OTHER, 100.0)])
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    flat = " ".join(lines)
    # every number of every cell is there, whole (cells may wrap at spaces, never inside a number)
    for token in ("62.5", "[50–74]", "37.5", "[26–50]", "100.0", "[88–100]", "0.0", "[0–12]", "48"):
        assert token in flat, token
    assert "…" not in text.replace("(percent", "")  # no column squeezed to an ellipsis
    assert _first_column(text) == "smollm2-135m-instruct-hf@127.0.0.1:8123qwen2.5-1.5b-instruct@127.0.0.1:8124"
    assert "/home/someone" not in text  # the shortened spec, not the whole path


def test_alias_replaces_the_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    aliases = parse_aliases(["smol=" + LONG], [LONG, OTHER])
    text = _render(monkeypatch, [_row(LONG, 62.5), _row(OTHER, 100.0)], aliases)
    assert _first_column(text) == "smolqwen2.5-1.5b-instruct@127.0.0.1:8124"


def test_short_spec_forms() -> None:
    assert short_spec("pkg:smollm2-135m") == "pkg:smollm2-135m"
    assert short_spec("openai:http://h:8000/v1") == "openai:h:8000"
    assert short_spec("openai:http://h:8000/v1#/a/b/model/") == "model@h:8000"
    assert short_spec("hf:/models/smol#m.gguf") == "hf:m.gguf"
    assert short_spec("hf:/models/smol/m.gguf") == "hf:m.gguf"
    long = short_spec("openai:http://h:1/v1#/x/" + "y" * 80)
    assert len(long) == 40 and "…" in long


def test_display_names_stay_unique() -> None:
    a, b = "openai:http://h:1/v1#/one/model", "openai:http://h:1/v1#/two/model"
    names = display_names([a, b])
    assert names[a] != names[b] and names[b].endswith("#2")


@pytest.mark.parametrize("value", ["smol", "=pkg:x", "smol=pkg:not-a-target"])
def test_bad_alias_is_an_input_error(value: str) -> None:
    with pytest.raises(InputError):
        parse_aliases([value], ["pkg:smollm2-135m"])


def test_board_table_keeps_numbers_whole_when_very_narrow() -> None:
    out = io.StringIO()
    Console(file=out, width=50, color_system=None).print(board_table("t", ["model", "score"], [[LONG, "12.5 [3–25]"]]))
    assert "12.5" in out.getvalue() and "[3–25]" in out.getvalue()
