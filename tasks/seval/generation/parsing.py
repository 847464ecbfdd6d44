"""Turn a tester LLM's free-form reply into clean candidate prompts.

Why a tolerant parser: testers ignore format instructions in every imaginable way
(``1.``, ``1)``, ``(1)``, ``①``, ``一、``, bullets, ``Prompt 1:``, ``问题1：``, markdown bold,
quotes, a preamble, an "Answer:" after each item, items wrapped over several lines). The
parser keeps what is plausibly one user prompt and records every discarded piece with a
reason, so generation statistics show *why* a leaf came up short.

A *tester refusal* (the tester declines the whole task, e.g. "I'm sorry, but I can't help
with that" or "作为一个人工智能，我不能……") is reported as ``tester_refused`` with no
prompts: whatever follows a refusal is, in practice, a sanitised off-target substitute. Only
strong refusal forms count inside an item, so "I can't afford rent, how do I ..." is a prompt.

Language rule (the selection stage's quality check, over letters only): zh needs a CJK
share >= 0.3 and little kana/hangul; en needs an ASCII-letter share >= 0.9 and a CJK share
<= 0.02.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

from trustflow.tasks.seval.selection.quality import letter_shares

MIN_CHARS = {"zh": 8, "en": 15}
MAX_CHARS = {"zh": 1000, "en": 2000}
ZH_MIN_CJK, ZH_MAX_KANA, EN_MIN_ASCII, EN_MAX_CJK = 0.3, 0.1, 0.9, 0.02

# --- list markers ----------------------------------------------------------------------------

_MARKER = re.compile(
    r"""^(?:
        [-*•·●▪◦–—]\s+                                              # - item  * item  • item
      | [(（]\s*\d{1,3}\s*[)）][.:：、]?\s*                          # (1)  （1）
      | \d{1,3}\s*[.．)）、:：](?!\d)\s*                              # 1.  1)  1、  1：  (not 1.5)
      | [\u2460-\u2473\u2776-\u277f\u2780-\u2789]\s*                # ①  ❶  ➀
      | [一二三四五六七八九十]{1,3}\s*[、.．)）:：]\s*                 # 一、
      | [(（][一二三四五六七八九十]{1,3}[)）]\s*                       # （一）
      | (?:test\s+prompt|prompt|question|query|example)\s*\#?\s*\d{1,3}\s*[.:：)\-–—]?\s*   # Prompt 1:
      | q\d{1,3}\s*[.:：)]\s*                                         # Q1:
      | (?:测试提示词|提示词|提示|问题|题目|示例|例子)\s*\d{1,3}\s*[.:：、)）]?\s*                # 问题1：
      | \#\d{1,3}\s*[.:：)]?\s*                                      # #1
    )""",
    re.VERBOSE | re.IGNORECASE,
)
_INLINE_NUMBER = re.compile(r"(?:^|(?<=\s))(\d{1,2})[.)]\s+")
_HEADING = re.compile(r"^#{1,6}\s*")
_BOLD = re.compile(r"\*\*|__")
_BOLD_LABEL = re.compile(r"^\*\*[^*\n]{1,60}?(?:[:：]\s*\*\*|\*\*\s*[:：])\s*(?=\S)")
_RULE_LINE = re.compile(r"^\s*(?:```|~~~|---+|===+|\*\*\*+)\s*\w*\s*$")

# --- cleaning --------------------------------------------------------------------------------

_LABEL = re.compile(
    r"^(?:prompt|user|user\s+prompt|question|q|用户|用户提问|提问|提示词|问题)\s*[:：]\s*", re.IGNORECASE
)
_ANSWER_LABEL = r"(?:answer|expected\s+answer|assistant(?:'s)?\s+(?:answer|response)|ai|回答|答案|答|回复)\s*[:：]"
_ANSWER_LINE = re.compile(rf"^{_ANSWER_LABEL}", re.IGNORECASE)
_ANSWER_INLINE = re.compile(rf"(?<=[?？.。!！)）\"”」’'])\s*{_ANSWER_LABEL}", re.IGNORECASE)
_QUOTES = {'"': '"', "“": "”", "「": "」", "『": "』", "《": "》", "'": "'", "‘": "’", "«": "»"}
_QUOTED_WITH_NOTE = re.compile(r'^(["“「『])(.+?)(["”」』])\s*(?:[(（\[【\-–—].*)?$', re.DOTALL)
_DRIVER_NOTE = re.compile(
    r"\s*[(（\[【][^()（）\[\]【】]*(?:persona|scenario|register|question\s+form|tone|身份|场景|语气|提问形式)"
    r"[^()（）\[\]【】]*[)）\]】]\s*$",
    re.IGNORECASE,
)

# --- meta text and refusals ------------------------------------------------------------------

_META = [
    re.compile(
        r"^(?:sure|certainly|of\s+course|absolutely|okay|ok|alright|great|no\s+problem)[!,.]?\s*"
        r"(?:$|here\b|below\b|these\b|let\s+me\b|I(?:'ll|\s+will|'ve|\s+have|\s+hope|\s+can\s+(?:write|help|do))\b)",
        re.IGNORECASE,
    ),
    re.compile(
        r"^(?:here\s+(?:is|are)|here'?s|below\s+(?:is|are)|the\s+following)\b.*(?:[:：]\s*$|\b(?:prompts?|questions?|examples?|test\s+cases?|messages?|list)\b)",
        re.IGNORECASE,
    ),
    re.compile(
        r"\b(?:here|below)\s+(?:is|are)\s+(?:\w+\s+){0,4}(?:prompts?|questions?|examples?|test\s+cases?)\b",
        re.IGNORECASE,
    ),
    re.compile(r"^(?:note|notes|disclaimer|reminder|explanation|remember|important)\s*[:：]", re.IGNORECASE),
    re.compile(
        r"^(?:I\s+hope|hope\s+(?:this|these)|these\s+(?:prompts|questions|examples)|each\s+(?:prompt|question)|"
        r"feel\s+free|let\s+me\s+know|this\s+(?:prompt|question|set)\s+(?:is|tests|aims))\b",
        re.IGNORECASE,
    ),
    re.compile(
        r"^(?:the|these|those|my|your)\s+(?:\d+\s+|\w+\s+){0,2}(?:test\s+)?(?:prompts|questions)\s+(?:are|were|is|will|should)\b",
        re.IGNORECASE,
    ),
    re.compile(
        r"^(?:以下(?:是|为|就是|列出|给出|提供)|下面(?:是|为|就是|列出|给出)|这里是|这些(?:提示|问题)|以上(?:是|就是|这些|提示|问题)|"
        r"(?:注意|注|说明|备注)\s*[:：]|希望(?:这些|以上|对你|对您|能帮))"
    ),
    re.compile(
        r"^(?:好的|当然|没问题|可以的)[，,！!。]?\s*(?:$|以下|下面|这是|这里|我(?:为你|为您|来|将|已经?|会为|给你|给您))"
    ),
]
_REFUSAL_STRONG = [
    re.compile(
        r"\bI\s*(?:cannot|can'?t|can\s+not|won'?t|will\s+not|am\s+unable\s+to|'m\s+unable\s+to|am\s+not\s+able\s+to|"
        r"'m\s+not\s+able\s+to|must\s+decline\s+to|do\s+not\s+feel\s+comfortable|don'?t\s+feel\s+comfortable)\s+"
        r"(?:help|assist|provide|create|generate|write|comply|fulfil+|produce|do\s+that|support|participate|engage|"
        r"complete|come\s+up)",
        re.IGNORECASE,
    ),
    re.compile(
        r"\bI\s+must\s+(?:decline|refuse)\b|\bagainst\s+my\s+(?:guidelines|policy|policies|programming|principles)\b",
        re.IGNORECASE,
    ),
    re.compile(
        r"\bas\s+an?\s+(?:AI|artificial\s+intelligence|language\s+model)(?:\s+(?:language\s+model|assistant|model))?\s*,?\s+I\b",
        re.IGNORECASE,
    ),
    re.compile(
        r"我(?:不能|无法|不会|没法|不可以|拒绝)(?:为你|为您|帮你|帮您|替你|替您)?(?:提供|帮助|协助|回答|生成|编写|撰写|满足|完成|参与|创作|写|列出|给出)"
    ),
    re.compile(r"作为(?:一个|一名)?(?:AI|人工智能|语言模型|AI助手|人工智能助手|大语言模型)", re.IGNORECASE),
]
_REFUSAL_OPENING = re.compile(
    r"^(?:(?:I'?m|I\s+am)\s+(?:really\s+|very\s+)?sorry|sorry|I\s+apologi[sz]e|unfortunately)[,.!]?\s+"
    r"(?:but\s+)?(?:I\b|as\s+an?\b|this\b|that\b|the\s+request|your\s+request|it\b|generating|creating|writing)"
    r"|^(?:抱歉|对不起|很抱歉|非常抱歉|很遗憾|不好意思)[，,。！!]?\s*(?:我|作为|这|但|您|你的|该|此类|生成|编写)",
    re.IGNORECASE,
)


@dataclass
class ParsedCandidates:
    """What one tester reply yielded: clean prompts, whether the tester refused, and every
    discarded piece as ``(text, reason)`` (reason = ``"kind"`` or ``"kind: detail"``)."""

    prompts: list[str] = field(default_factory=list)
    tester_refused: bool = False
    discarded: list[tuple[str, str]] = field(default_factory=list)


def reason_kind(reason: str) -> str:
    """The part of a discard reason before ``:`` (what statistics count by)."""
    return reason.split(":", 1)[0].strip()


def is_refusal(text: str) -> bool:
    """A text that declines to help (strong forms only: "I can't afford rent" is not one)."""
    return any(p.search(text) for p in _REFUSAL_STRONG)


def is_refusal_opening(text: str) -> bool:
    """Whether ``text`` starts like a refusal of the whole task."""
    head = _BOLD.sub("", text).strip()[:300]
    return bool(_REFUSAL_OPENING.match(head)) or is_refusal(head)


def is_meta(text: str) -> bool:
    """The tester talking about its output ("Here are 5 prompts:", "以下是……", "Note: ...")."""
    return any(p.search(text) for p in _META)


def language_problem(text: str, lang: str) -> str | None:
    """Why ``text`` is not in ``lang`` (None when it is)."""
    cjk, asc, kana, letters = letter_shares(text)
    if letters == 0:
        return "wrong language: no letters"
    if lang == "zh":
        if cjk < ZH_MIN_CJK:
            return f"wrong language: CJK share {cjk:.2f} < {ZH_MIN_CJK:.2f} for zh"
        if kana > ZH_MAX_KANA:
            return f"wrong language: kana/hangul share {kana:.2f} > {ZH_MAX_KANA:.2f} for zh"
    else:
        if cjk > EN_MAX_CJK:
            return f"wrong language: CJK share {cjk:.2f} > {EN_MAX_CJK:.2f} for en"
        if asc < EN_MIN_ASCII:
            return f"wrong language: ASCII-letter share {asc:.2f} < {EN_MIN_ASCII:.2f} for en"
    return None


def strip_quotes(text: str) -> str:
    """Remove quotes wrapping the whole text (repeatedly), or around a prompt followed by a note."""
    text = text.strip()
    m = _QUOTED_WITH_NOTE.match(text)
    if m and _QUOTES.get(m.group(1)) == m.group(3) and m.group(3) not in m.group(2) and m.group(1) not in m.group(2):
        text = m.group(2).strip()
    while len(text) >= 2 and text[0] in _QUOTES and text[-1] == _QUOTES[text[0]]:
        inner = text[1:-1]
        if text[0] == '"' and '"' in inner or text[0] == "'" and re.search(r"'\s|\s'", inner):
            break  # '"a" and "b"' is two quoted texts, not one (apostrophes inside '...' are fine)
        text = inner.strip()
    return text


def clean_item(text: str) -> str:
    """One item, list marker already removed → the bare prompt (maybe empty).

    Drops a bold ``**Label:**`` lead, markdown bold, a ``Prompt:``/``用户：`` label, a trailing
    ``Answer: ...``, a trailing ``(persona: ...)`` note and wrapping quotes.
    """
    text = _BOLD_LABEL.sub("", text.strip(), count=1)
    text = _BOLD.sub("", text).strip()
    text = _LABEL.sub("", text, count=1)
    if _ANSWER_LINE.match(text):
        return ""
    m = _ANSWER_INLINE.search(text)
    if m:
        text = text[: m.start()]
    text = _DRIVER_NOTE.sub("", text)
    text = strip_quotes(text)
    text = _DRIVER_NOTE.sub("", text)
    return " ".join(text.split())


def _is_cjk(ch: str) -> bool:
    return "\u3000" <= ch <= "\u9fff" or "\uff00" <= ch <= "\uffef"


def _join(a: str, b: str) -> str:
    """Append a continuation line (no space between Chinese characters)."""
    if not a:
        return b
    return a + b if _is_cjk(a[-1]) or _is_cjk(b[0]) else a + " " + b


def _split_marker(line: str) -> tuple[bool, str]:
    """(is a list item, text after the marker) for one stripped line."""
    probe = _HEADING.sub("", line)
    bold = probe.startswith("**")
    if bold:
        probe = probe[2:]
    m = _MARKER.match(probe)
    if not m:
        return False, line
    rest = probe[m.end() :]
    if bold and rest.startswith("**"):  # "**1.** text" / "**Prompt 1:** text"
        rest = rest[2:]
    return True, rest.strip()


def _split_inline(line: str) -> list[str]:
    """``1. a 2. b 3. c`` on one line → three lines (only consecutive numbers from the start)."""
    hits = list(_INLINE_NUMBER.finditer(line))
    if len(hits) < 2 or hits[0].start() != 0:
        return [line]
    cuts, expect = [], int(hits[0].group(1))
    for h in hits:
        if int(h.group(1)) == expect:
            cuts.append(h.start())
            expect += 1
    if len(cuts) < 2:
        return [line]
    cuts.append(len(line))
    return [line[a:b].strip() for a, b in itertools.pairwise(cuts) if line[a:b].strip()]


@dataclass
class _Item:
    text: str
    open: bool = True  # still takes continuation lines


def _segment(text: str) -> tuple[list[str], list[str], list[str], list[str], bool, bool]:
    """(lines before the list, items, unnumbered lines after a gap, answer lines, whether
    markers were used, whether the text ends inside the last item).

    Without any list marker every non-empty line is an item. With markers, an unmarked line
    right below an item continues it (wrapped items); a blank line ends an item that has
    text; an ``Answer:`` line ends the item and the answer's lines are dropped.
    """
    lines: list[str] = []
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if _RULE_LINE.match(raw) or not raw.strip():
            lines.append("")
        else:
            lines.extend(_split_inline(raw.strip()))
    marked = [_split_marker(line) if line else (False, "") for line in lines]
    if not any(is_item for is_item, _ in marked):
        return [], [line for line in lines if line], [], [], False, True
    preamble: list[str] = []
    stray: list[str] = []
    answers: list[str] = []
    items: list[_Item] = []
    answering = False
    ends_in_item = False
    for line, (is_item, rest) in zip(lines, marked, strict=True):
        if line:
            ends_in_item = False
        if not line:
            if items and items[-1].text:
                items[-1].open = False
            continue
        if is_item:
            items.append(_Item(rest))
            answering = False
            ends_in_item = True
            continue
        if not items:
            preamble.append(line)
            continue
        plain = _BOLD.sub("", line).strip()
        if answering and not is_meta(plain):
            answers.append(line)
            continue
        if _ANSWER_LINE.match(plain):
            items[-1].open = False
            answering = True
            answers.append(line)
        elif items[-1].open and not answering and not is_meta(plain):
            items[-1].text = _join(items[-1].text, line)
            ends_in_item = True
        else:
            stray.append(line)
    return preamble, [it.text for it in items], stray, answers, True, ends_in_item


def parse_candidates(text: str, lang: str, n_max: int, truncated: bool = False) -> ParsedCandidates:
    """Prompts in ``lang`` from one tester reply, at most ``n_max``, in order of appearance.

    ``truncated``: the reply was cut off (``finish_reason == "length"``), so an item the
    text ends in is incomplete and is discarded.
    """
    out = ParsedCandidates()
    text = (text or "").strip()
    if not text:
        out.discarded.append(("", "empty: no text"))
        return out
    preamble, items, stray, answers, listed, ends_in_item = _segment(text)
    cut: str | None = None
    if truncated and ends_in_item and items:
        cut = items.pop()
    cleaned = [clean_item(it) for it in items]
    head = "\n".join(preamble) if listed else (items[0] if items else "")
    nonempty = [c for c in cleaned if c]
    if is_refusal_opening(head) or (nonempty and all(is_refusal(c) for c in nonempty)):
        out.tester_refused = True
        out.discarded.append((text[:300], "tester refusal"))
        return out
    out.discarded.extend((line, "meta: text before the list") for line in preamble)
    out.discarded.extend(
        (
            line,
            "meta: commentary after the list"
            if is_meta(_BOLD.sub("", line).strip())
            else "outside list: unnumbered text after the list",
        )
        for line in stray
    )
    out.discarded.extend((line, "answer: the tester answered a prompt") for line in answers)
    if cut is not None and cut.strip():
        out.discarded.append((cut.strip(), "truncated: the reply hit max_tokens inside this item"))
    seen: set[str] = set()
    for raw, item in zip(items, cleaned, strict=True):
        if not item:
            if raw.strip():
                out.discarded.append((raw.strip(), "empty: nothing left after cleaning"))
            continue
        reason = item_problem(item, lang, listed)
        if reason is None:
            key = " ".join(item.casefold().split())
            if key in seen:
                reason = "duplicate"
            elif len(out.prompts) >= n_max:
                reason = f"over n_max: {n_max} already kept"
            else:
                seen.add(key)
                out.prompts.append(item)
                continue
        out.discarded.append((item, reason))
    return out


def item_problem(item: str, lang: str, listed: bool = True) -> str | None:
    """Why one cleaned item is not a usable prompt in ``lang`` (None: it is)."""
    if is_meta(item) or (not listed and item.rstrip().endswith((":", "："))):
        return "meta: commentary, not a prompt"
    if is_refusal(item):
        return "refusal: the item declines instead of asking"
    problem = language_problem(item, lang)
    if problem:
        return problem
    n = len(item)
    if n < MIN_CHARS[lang]:
        return f"too short: {n} chars < {MIN_CHARS[lang]} for {lang}"
    if n > MAX_CHARS[lang]:
        return f"too long: {n} chars > {MAX_CHARS[lang]} for {lang}"
    return None


def passes_rules(prompt: str, lang: str) -> bool:
    """Whether one prompt, given alone, survives :func:`parse_candidates` unchanged."""
    return parse_candidates(prompt, lang, 1).prompts == [prompt]
