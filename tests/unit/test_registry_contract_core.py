"""The registry contract itself: decorator, options models, spec grammar, discovery."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pydantic import Field

from trustflow.errors import ConfigError
from trustflow.registry import NoOptions, Options, Registry, format_spec, parse_spec, validate_options


class WidgetOptions(Options):
    size: int = Field(3, ge=1)
    colour: str = "red"


def test_decorator_names_the_entry_once_and_records_its_options() -> None:
    reg: Registry[type] = Registry("widget")

    @reg.register("box", options=WidgetOptions)
    class Box:
        pass

    @reg.register("plain")
    def plain() -> int:
        return 1

    assert Box.name == "box" and Box.Options is WidgetOptions  # type: ignore[attr-defined]
    assert plain.name == "plain"  # type: ignore[attr-defined]
    assert reg.entry("plain").options is NoOptions
    assert reg.names() == ["box", "plain"]


def test_class_options_attribute_is_taken_when_not_given() -> None:
    reg: Registry[type] = Registry("widget")

    @reg.register("auto")
    class Auto:
        Options = WidgetOptions

    assert reg.entry("auto").options is WidgetOptions


def test_resolve_validates_and_errors_name_entry_and_field() -> None:
    reg: Registry[type] = Registry("widget")
    reg.register("box", options=WidgetOptions)(type("Box", (), {}))
    entry, opts = reg.resolve("box?size=5")
    assert entry.name == "box" and opts == WidgetOptions(size=5)
    with pytest.raises(ConfigError, match=r"widget 'box': unknown option 'sizee' \(known: colour, size\)"):
        reg.resolve("box?sizee=5")
    with pytest.raises(ConfigError, match=r"widget 'box': option 'size'"):
        reg.resolve("box?size=0")
    with pytest.raises(ConfigError, match="unknown widget 'crate'; known: box"):
        reg.resolve("crate")
    _, opts = reg.resolve("box?size=5", size=7)  # overrides win
    assert opts.size == 7  # type: ignore[attr-defined]


def test_spec_round_trips_in_canonical_form() -> None:
    reg: Registry[type] = Registry("widget")
    reg.register("box", options=WidgetOptions)(type("Box", (), {}))
    _, opts = reg.resolve("box?colour=blue&size=4")
    text = reg.spec("box", opts)
    assert text == "box?colour=blue&size=4"
    assert reg.resolve(text)[1] == opts
    assert reg.spec("box", WidgetOptions()) == "box"  # defaults left out


@pytest.mark.parametrize(
    ("text", "name", "options"),
    [
        ("mtcnn", "mtcnn", {}),
        ("haar?min_neighbors=5&cascade=a.xml", "haar", {"min_neighbors": "5", "cascade": "a.xml"}),
        ("torchvision:ssd300_vgg16?weights=/w/x.pth", "torchvision", {"target": "ssd300_vgg16", "weights": "/w/x.pth"}),
        ("llm:pkg:qwen2.5-1.5b", "llm", {"target": "pkg:qwen2.5-1.5b"}),
        ("openai:http://127.0.0.1:8000/v1#m", "openai", {"target": "http://127.0.0.1:8000/v1#m"}),
        ("llm:openai:http://h:1/v1#m?threshold=0.4", "llm", {"target": "openai:http://h:1/v1#m", "threshold": "0.4"}),
        ("x?label_map=face:person,cat:dog", "x", {"label_map": "face:person,cat:dog"}),
    ],
)
def test_one_grammar_parses_every_kind_of_spec(text: str, name: str, options: dict[str, str]) -> None:
    spec = parse_spec(text)
    assert spec.name == name and dict(spec.options) == options
    assert parse_spec(str(spec)) == parse_spec(format_spec(name, options))


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty"),
        (":x", "no name"),
        ("a:", "nothing after 'a:'"),
        ("a?b=1&b=2", "given twice"),
        ("a:t?target=u", "given twice"),
        ("a?b=1&c", "key=value"),
    ],
)
def test_malformed_specs_are_config_errors(text: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        parse_spec(text)


def test_validate_options_reports_every_problem_and_missing_fields() -> None:
    class Needs(Options):
        eps: float
        steps: int = 1

    with pytest.raises(ConfigError, match=r"thing: option 'eps' is required; option 'steps'"):
        validate_options("thing", Needs, {"steps": "x"})


def test_plugin_package_is_discovered_on_first_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "plugpkg_contract"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "from trustflow.registry import Registry\nREG = Registry('gadget', plugins='plugpkg_contract')\n"
    )
    (pkg / "one.py").write_text("from plugpkg_contract import REG\n@REG.register('one')\ndef one():\n    return 1\n")
    (pkg / "_private.py").write_text("raise RuntimeError('never imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        import plugpkg_contract  # type: ignore[import-not-found]

        assert "plugpkg_contract.one" not in sys.modules
        assert plugpkg_contract.REG.names() == ["one"]
        assert plugpkg_contract.REG.get("one")() == 1
    finally:
        for mod in [m for m in sys.modules if m.startswith("plugpkg_contract")]:
            del sys.modules[mod]
