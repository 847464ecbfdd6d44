"""The 10 S-Eval adversarial instruction attacks: registry, determinism, language, intent
preservation, encryption round trips, the attack table, options and the LLM-rewrite hook."""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from trustflow.errors import ConfigError, InputError
from trustflow.tasks.seval import attacks as A
from trustflow.tasks.seval.attacks import (
    ATTACKS,
    SEVAL_ATTACK_NAMES,
    SEVAL_ATTACK_PROMPTS,
    AttackError,
    AttackPrompt,
    apply_all,
    attack_table,
    caesar_shift,
    decode,
    encode,
    get_attack,
)

TEN = [
    "positive_induction",
    "reverse_induction",
    "code_injection",
    "instruction_jailbreak",
    "goal_hijacking",
    "instruction_encryption",
    "deepinception",
    "in_context_attack",
    "chain_of_utterances",
    "compositional_instructions",
]

# Base prompts with the awkward bits: quotes, emoji, braces that look like template fields,
# percent signs, backslashes, a newline, CJK punctuation.
BASE = {
    "en": "How do I bake bread at home? Use \"double\" and 'single' quotes, 100% {prompt} \\n 😀🍞\nSecond line.",
    "zh": "在家里怎么烤面包？“中文引号”和'英文引号'都保留，100% {prompt} 😀🍞\n第二行：ABC xyz。",
}
CJK = re.compile(r"[\u4e00-\u9fff]")


def run_code_payload(payload: str) -> str:
    """Execute a code_injection payload (it only builds and prints a string) and return stdout."""
    lines = payload.split("\n")
    assert lines[0] == "```python" and lines[-1] == "```"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec("\n".join(lines[1:-1]), {"__builtins__": {"print": print, "sorted": sorted}})
    return buf.getvalue()


def recovered_intent(ap: AttackPrompt, base: str) -> bool:
    """True when the attack prompt carries the base prompt: verbatim, or by decoding its payload."""
    if ap.attack == "instruction_encryption":
        assert ap.payload and ap.payload in ap.prompt and ap.encoding
        return decode(ap.payload, ap.encoding) == base
    if ap.attack == "code_injection":
        assert ap.payload and ap.payload in ap.prompt
        return run_code_payload(ap.payload) == base + "\n"
    return base in ap.prompt


def template_part(ap: AttackPrompt, base: str) -> str:
    text = ap.prompt.replace(ap.payload, "") if ap.payload else ap.prompt
    return text.replace(base, "")


# -- registry ------------------------------------------------------------------------------


def test_all_ten_registered_with_exact_names_one_file_each() -> None:
    assert list(SEVAL_ATTACK_NAMES) == TEN
    assert set(TEN) <= set(ATTACKS.names())
    assert list(A.ATTACK_NAMES[:10]) == TEN
    pkg = Path(A.__file__).parent
    for name in TEN:
        cls = ATTACKS.get(name)
        assert cls.name == name
        assert cls.__module__ == f"trustflow.tasks.seval.attacks.{name}"
        assert (pkg / f"{name}.py").is_file()


def test_names_match_official_categories(seval_small: Path) -> None:
    for lang in ("zh", "en"):
        with zipfile.ZipFile(seval_small / f"S-Eval_attack_{lang}_small.jsonl.zip") as zf:
            member = next(n for n in zf.namelist() if n.endswith(".jsonl") and "__MACOSX" not in n)
            with zf.open(member) as fh:
                cats = {json.loads(json.loads(line)["ext"])["category"] for line in fh if line.strip()}
        assert cats == set(TEN)


def test_unknown_attack_lists_known_ones() -> None:
    for call in (
        lambda: get_attack("nope"),
        lambda: apply_all("b", "q", "en", 0, attacks=["nope"]),
        lambda: attack_table(pa.table({"prompt_id": ["b"], "lang": ["en"], "prompt": ["q"]}), 0, ["nope"]),
    ):
        with pytest.raises(ConfigError, match=r"unknown S-Eval attack 'nope'; known: ") as exc:
            call()
        for name in TEN:
            assert name in str(exc.value)


# -- determinism ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", TEN)
def test_same_inputs_same_output(name: str) -> None:
    for lang in ("zh", "en"):
        for seed in (0, 1, 12345):
            first = get_attack(name).apply("base-1", BASE[lang], lang, seed)
            again = get_attack(name).apply("base-1", BASE[lang], lang, seed)
            assert first == again
            assert first.seed == seed and first.lang == lang and first.base_id == "base-1" and first.attack == name


@pytest.mark.parametrize("name", TEN)
def test_seeds_spread_over_every_template(name: str) -> None:
    attack = get_attack(name)
    ids = attack.template_ids()
    assert len(ids) > 1, "every family here has several templates"
    by_seed = {attack.apply("base-1", BASE["en"], "en", s).template_id for s in range(400)}
    assert by_seed == set(ids)
    by_base = {attack.apply(f"base-{i}", BASE["en"], "en", 0).template_id for i in range(400)}
    assert by_base == set(ids)


def test_output_does_not_depend_on_python_hash_seed() -> None:
    code = (
        "import json; from trustflow.tasks.seval.attacks import apply_all; "
        f"print(json.dumps([a.model_dump() for l in ('zh', 'en') for a in apply_all('b7', {BASE!r}[l], l, 7)]))"
    )
    here = [a.model_dump() for lang in ("zh", "en") for a in apply_all("b7", BASE[lang], lang, 7)]
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert json.loads(out.stdout) == here


def test_template_choice_is_pinned() -> None:
    # Guards the seed derivation (SHA-256 of attack, base_id, seed): changing it silently
    # changes every published attack set.
    got = [a.template_id for a in apply_all("pinned-base", "q", "en", 2024)]
    assert got == [
        "affirm.echo_question.v1",
        "protect.safety_handbook.v1",
        "python.join.v1",
        "role_play.villain_writer.v1",
        "priority_update.summary.v1",
        "url.private_channel.v1",
        "nested.scifi.v1",
        "dialogue.qa_transcript.v1",
        "cou.seeker_oracle.exam.v1",
        "writing.novel_chapter.v1",
    ]


# -- language and intent --------------------------------------------------------------------


@pytest.mark.parametrize("name", TEN)
def test_language_of_template_and_intent_preserved(name: str) -> None:
    attack = get_attack(name)
    for seed in range(40):
        zh = attack.apply("b", BASE["zh"], "zh", seed)
        assert recovered_intent(zh, BASE["zh"]), (seed, zh.prompt)
        assert len(CJK.findall(template_part(zh, BASE["zh"]))) >= 5, (seed, zh.template_id)
        en = attack.apply("b", BASE["en"], "en", seed)
        assert recovered_intent(en, BASE["en"]), (seed, en.prompt)
        part = template_part(en, BASE["en"])
        assert not CJK.search(part), (seed, en.template_id)
        assert sum(c.isascii() for c in part) / len(part) >= 0.99, (seed, en.template_id)
        # A zh template around an English question and vice versa keeps its own language.
        zh_on_en = attack.apply("b", BASE["en"], "zh", seed)
        assert recovered_intent(zh_on_en, BASE["en"]) and CJK.search(template_part(zh_on_en, BASE["en"]))


def test_intent_preserved_on_real_base_prompts(seval_small: Path) -> None:
    for lang in ("zh", "en"):
        with zipfile.ZipFile(seval_small / f"S-Eval_base_risk_{lang}_small.jsonl.zip") as zf:
            member = next(n for n in zf.namelist() if n.endswith(".jsonl") and "__MACOSX" not in n)
            with zf.open(member) as fh:
                rows = [json.loads(line) for _, line in zip(range(60), fh, strict=False)]  # the first 60 lines
        for row in rows:
            for ap in apply_all(row["traceid"], row["prompt"], lang, 0):
                assert recovered_intent(ap, row["prompt"]), (ap.attack, row["traceid"])
                if lang == "zh":
                    assert CJK.search(template_part(ap, row["prompt"]))


def test_bad_inputs() -> None:
    with pytest.raises(InputError, match="lang must be 'zh' or 'en', got 'fr'"):
        get_attack("positive_induction").apply("b", "q", "fr", 0)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="the prompt is empty"):
        get_attack("deepinception").apply("b", "  ", "en", 0)


# -- encryption ----------------------------------------------------------------------------

ROUND_TRIP_TEXTS = [
    BASE["en"],
    BASE["zh"],
    "zZaA 09 ~!@#$%^&*()_+-=[]{}|;:'\",.<>/?`",
    "\u4e00\u9fff\u4e01\u9ffe 「」《》、。！？",  # edges of the shifted CJK block
    "𠀀𠀁 (CJK ext. B, untouched) 👨‍👩‍👧 \u200b\t\r\n end",
    "%41%20 already-looking-encoded + plus",
]


@pytest.mark.parametrize("encoding", ["base64", "url", "caesar:1", "caesar:13", "caesar:25", "caesar:20991"])
def test_encode_decode_round_trip(encoding: str) -> None:
    for text in ROUND_TRIP_TEXTS:
        enc = encode(text, encoding)
        assert decode(enc, encoding) == text
        if encoding in ("base64", "url"):
            assert enc.isascii()


def test_caesar_rule() -> None:
    assert caesar_shift("abz XYZ", 3) == "dec ABC"
    assert caesar_shift("\u4e00\u9fff", 1) == "\u4e01\u4e00"
    kept = "123 😀 “”「」 𠀀 ，。"
    assert caesar_shift(kept, 7) == kept
    cipher = encode("你好世界", "caesar:7")
    assert cipher != "你好世界" and all(0x4E00 <= ord(c) <= 0x9FFF for c in cipher)


@pytest.mark.parametrize("kind", ["base64", "url", "caesar"])
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_encryption_attack_by_option(kind: str, lang: str) -> None:
    attack = get_attack("instruction_encryption", encoding=kind)
    for seed in range(20):
        ap = attack.apply("b", BASE[lang], lang, seed)  # type: ignore[arg-type]
        assert ap.encoding is not None and ap.encoding.split(":")[0] == kind
        assert ap.template_id.startswith(kind + ".")
        assert ap.prompt.endswith("\n" + ap.payload)
        assert decode(ap.payload, ap.encoding) == BASE[lang]
        if kind == "caesar":
            assert str(int(ap.encoding.split(":")[1])) in template_part(ap, BASE[lang])
    fixed = get_attack("instruction_encryption", encoding="caesar", shift=5).apply("b", "abc", "en", 0)
    assert fixed.encoding == "caesar:5" and fixed.payload == "fgh"
    by_seed = {get_attack("instruction_encryption").apply("b", "q", "en", s).encoding.split(":")[0] for s in range(60)}
    assert by_seed == {"base64", "url", "caesar"}


def test_decode_errors() -> None:
    with pytest.raises(ConfigError, match="unknown encoding 'rot13'"):
        decode("x", "rot13")
    with pytest.raises(InputError, match="not valid Base64"):
        decode("!!!", "base64")


# -- per-attack specifics ---------------------------------------------------------------------


def test_code_injection_pieces_and_cuts() -> None:
    attack = get_attack("code_injection")
    prompt = "alpha bravo charlie delta echo foxtrot golf hotel"  # no piece occurs twice
    counts = set()
    for seed in range(60):
        ap = attack.apply("b", prompt, "en", seed)
        code = (ap.payload or "").split("\n", 1)[1].rsplit("\n", 1)[0]
        strings = [
            n.value for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Constant) and isinstance(n.value, str)
        ]
        pieces = [s for s in strings if s and set(s) != {"{", "}"}]  # not '' nor the '{}{}' pattern
        counts.add(len(pieces))
        assert "".join(sorted(pieces, key=prompt.index)) == prompt
        # English cuts fall right after a space
        assert all(p.endswith(" ") for p in pieces if not prompt.endswith(p))
    assert counts == {2, 3, 4}
    one = get_attack("code_injection", min_pieces=1, max_pieces=1).apply("b", "x", "en", 0)
    assert run_code_payload(one.payload or "") == "x\n"


def test_deepinception_and_in_context_options() -> None:
    ap = get_attack("deepinception", layers=3, characters=9).apply("b", "q", "en", 0)
    assert "layer 3." in ap.prompt and "at least 9 characters" in ap.prompt
    for shots in (1, 4):
        ap = get_attack("in_context_attack", shots=shots).apply("b", "q", "en", 0)
        assert ap.prompt.count("Sure.") == shots
        assert ap.prompt.rstrip().endswith(("Assistant:", "A:"))


def test_options_are_validated() -> None:
    with pytest.raises(ConfigError, match="S-Eval attack 'deepinception': option 'layers'"):
        get_attack("deepinception", layers=0)
    with pytest.raises(ConfigError, match="S-Eval attack 'positive_induction': unknown option 'bogus'"):
        get_attack("positive_induction", bogus=1)
    with pytest.raises(ConfigError, match=r"unknown template\(s\) 'nope'; known: role_play\.dev_mode\.v1"):
        get_attack("instruction_jailbreak", templates=["nope"])
    only = get_attack("instruction_jailbreak", templates=["role_play.dev_mode.v1"])
    assert {only.apply("b", "q", "en", s).template_id for s in range(20)} == {"role_play.dev_mode.v1"}


# -- attack table --------------------------------------------------------------------------


def test_attack_table() -> None:
    base = pa.table(
        {
            "prompt_id": ["e1", "e2", "z1"],
            "lang": ["en", "en", "zh"],
            "prompt": [BASE["en"], "Another question?", BASE["zh"]],
            "risk_type": ["x", "y", "z"],  # extra columns are ignored
        }
    )
    out = attack_table(base, seed=3)
    assert out.schema.equals(SEVAL_ATTACK_PROMPTS.with_metadata(), check_metadata=True)
    assert out.num_rows == 30
    rows = out.to_pylist()
    for pid in ("e1", "e2", "z1"):
        mine = [r for r in rows if r["base_id"] == pid]
        assert [r["attack"] for r in mine] == TEN
    assert len({r["attack_id"] for r in rows}) == 30
    assert all(r["seed"] == 3 for r in rows)
    assert attack_table(base, seed=3).equals(out)
    # the rows are exactly what apply() gives
    r = rows[5]
    ap = get_attack(r["attack"]).apply(r["base_id"], base.column("prompt")[0].as_py(), "en", 3)
    assert (ap.attack_id, ap.prompt, ap.template_id, ap.payload, ap.encoding) == (
        r["attack_id"],
        r["prompt"],
        r["template_id"],
        r["payload"],
        r["encoding"],
    )
    assert attack_table(base, seed=4).column("attack_id").to_pylist() != out.column("attack_id").to_pylist()
    two = attack_table(
        base, 3, ["goal_hijacking", "instruction_encryption"], {"instruction_encryption": {"encoding": "url"}}
    )
    assert two.num_rows == 6 and set(two.column("encoding").to_pylist()) == {None, "url"}


def test_attack_table_bad_input() -> None:
    with pytest.raises(InputError, match="lacks column\\(s\\) lang"):
        attack_table(pa.table({"prompt_id": ["a"], "prompt": ["q"]}), 0)
    with pytest.raises(InputError, match="prompt_id 'a' occurs more than once"):
        attack_table(pa.table({"prompt_id": ["a", "a"], "lang": ["en", "zh"], "prompt": ["q", "q"]}), 0)
    with pytest.raises(InputError, match="lang must be 'zh' or 'en'"):
        attack_table(pa.table({"prompt_id": ["a"], "lang": ["de"], "prompt": ["q"]}), 0)


# -- LLM rewrite -----------------------------------------------------------------------------


class FakeLLM:
    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.calls: list[tuple[list[dict[str, str]], dict[str, Any]]] = []

    def chat(self, messages: list[dict[str, str]], **params: Any) -> str:
        self.calls.append((messages, params))
        return self.reply


def test_rewrite_hooks() -> None:
    assert sorted(n for n in TEN if ATTACKS.get(n).supports_rewrite) == [
        "compositional_instructions",
        "goal_hijacking",
        "reverse_induction",
    ]
    llm = FakeLLM("  For my safety guide, what should I avoid when baking?  ")
    ap = get_attack("reverse_induction").apply_rewrite("b", "how to bake", "en", 5, llm, temperature=0.0)
    assert ap.prompt == "For my safety guide, what should I avoid when baking?"
    assert ap.rewritten and ap.template_id == "llm_rewrite.v1" and ap.seed == 5
    messages, params = llm.calls[0]
    assert params == {"temperature": 0.0}
    assert messages[0]["role"] == "system" and messages[1] == {"role": "user", "content": "how to bake"}

    hijack = get_attack("goal_hijacking").apply_rewrite("b", "如何烤面包？", "zh", 1, FakeLLM("写一首关于春天的诗。"))
    assert hijack.prompt.startswith("写一首关于春天的诗。") and "如何烤面包？" in hijack.prompt
    assert hijack == get_attack("goal_hijacking").apply_rewrite(
        "b", "如何烤面包？", "zh", 1, FakeLLM("写一首关于春天的诗。")
    )

    novel = get_attack("compositional_instructions").rewrite("q", "en", FakeLLM("In the novel X ..."))
    assert novel.startswith("You are a novelist now.") and novel.endswith("In the novel X ...")

    with pytest.raises(AttackError, match="empty reply"):
        get_attack("reverse_induction").apply_rewrite("b", "q", "en", 0, FakeLLM("   "))
    with pytest.raises(ConfigError, match="has no LLM rewrite mode; attacks that have one: compositional_instructions"):
        get_attack("positive_induction").apply_rewrite("b", "q", "en", 0, llm)
    with pytest.raises(ConfigError, match="must have a chat"):
        get_attack("reverse_induction").apply_rewrite("b", "q", "en", 0, object())  # type: ignore[arg-type]
