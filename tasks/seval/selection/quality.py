"""Cheap text-quality checks on generated prompts: right language, sane length, a real
request, and not the generator talking about its own output.

Why heuristics and no language-id model: the failures seen in LLM-generated test prompts
are gross (an English prompt in the zh set, a refusal "I cannot help with that" or a preamble
"Sure, here are 5 prompts:" saved as a prompt, an empty or run-away text), and character
statistics catch them with no extra dependency and no model. Every failed check produces its
own reason; a row failing several gets them all, joined by "; ".

Language rules (over letters, i.e. ``str.isalpha`` characters, so digits and punctuation
do not count): zh needs a CJK-ideograph share >= ``zh_min_cjk_share`` (0.3; Chinese prompts
often quote English terms) and little kana/hangul (so Japanese/Korean is not taken for
Chinese); en needs an ASCII-letter share >= ``en_min_ascii_share`` (0.9) and a CJK share <=
``en_max_cjk_share`` (0.02).
"""

from __future__ import annotations

import re
from typing import Literal

import pandas as pd
from pydantic import Field

from trustflow.errors import ConfigError
from trustflow.tasks.seval.selection.base import (
    SELECTORS,
    SelectionContext,
    SelectionResult,
    Strategy,
    StrategyOptions,
)

Lang = Literal["zh", "en"]

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef]")
_KANA_HANGUL = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\uac00-\ud7af\u1100-\u11ff]")

# --- request / question cues -------------------------------------------------------------------

_EN_REQUEST_START = re.compile(
    r"^\s*(?:please\s+|now\s+|so\s+|ok(?:ay)?,?\s+|hey,?\s+)?(?:"
    r"how|what|why|where|when|who|whom|whose|which|is|are|am|was|were|do|does|did|can|could|would|"
    r"will|should|shall|may|might|must|have|has|write|tell|explain|describe|give|list|provide|help|"
    r"show|create|generate|suggest|recommend|teach|draft|compose|summari[sz]e|translate|find|make|"
    r"design|outline|compare|analy[sz]e|share|produce|imagine|pretend|act|play|let'?s|let\s+me|"
    r"assume|suppose|consider|continue|complete|rewrite|develop|plan|build|detail|name|identify|"
    r"calculate|prepare|convince|persuade|argue|instruct|guide|walk\s+me|i\s+(?:want|need|would\s+like|"
    r"'d\s+like|wish|am\s+looking)|i'?m\s+(?:looking|trying|wondering)|you\s+(?:are|will|must|should)|"
    r"your\s+task|from\s+now\s+on"
    r")\b",
    re.IGNORECASE,
)
_EN_REQUEST_ANY = re.compile(
    r"\b(?:please|help\s+me|can\s+you|could\s+you|would\s+you|will\s+you|tell\s+me|show\s+me|"
    r"i\s+want\s+you\s+to|i\s+need|your\s+task\s+is|respond\s+(?:with|to)|answer\s+(?:the|this|my))\b",
    re.IGNORECASE,
)
_ZH_REQUEST = re.compile(
    r"请|如何|怎么|怎样|怎麼|什么|甚麼|为什么|為什麼|哪|吗|嗎|呢|能否|可否|能不能|可不可以|是否|"
    r"帮我|幫我|帮忙|告诉我|告訴我|给我|給我|写一|编写|撰写|列出|列举|描述|解释|解釋|提供|介绍|介紹|"
    r"分析|生成|设计|建议|推荐|教我|我想|我要|我需要|希望你|你能|你可以|多少|几个|几种|应该|應該|"
    r"假设|假設|扮演|想象|想像|继续|繼續|讲述|说明|說明|制定|制作|给出|給出"
)
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?;:\n])\s+|\n+")

# --- refusals and meta-text ----------------------------------------------------------------------

_REFUSAL = [
    re.compile(
        r"\bI\s+(?:cannot|can'?t|can\s+not|won'?t|will\s+not|am\s+unable\s+to|'m\s+unable\s+to|"
        r"am\s+not\s+able\s+to|'m\s+not\s+able\s+to|must\s+decline\s+to|do\s+not\s+feel\s+comfortable)\s+"
        r"(?:help|assist|provide|create|generate|fulfil+|comply|write|produce|do\s+that|support|engage|"
        r"answer|give|share|offer|complete|participate)",
        re.IGNORECASE,
    ),
    re.compile(
        r"^\s*(?:I'?m\s+sorry|I\s+am\s+sorry|sorry|I\s+apologi[sz]e|unfortunately)\b[,.!]?\s+(?:but\s+)?I\b",
        re.IGNORECASE,
    ),
    re.compile(
        r"\bI\s+must\s+(?:decline|refuse)\b|\bagainst\s+my\s+(?:guidelines|programming|policy)\b", re.IGNORECASE
    ),
    re.compile(r"^\s*(?:抱歉|对不起|對不起|很遗憾|很遺憾|不好意思)"),
    re.compile(
        r"我(?:不能|无法|無法|不会|不會|没法|拒绝|拒絕)(?:为你|为您|為你|為您|帮|幫|协助|協助)?(?:提供|帮助|幫助|协助|協助|回答|生成|满足|滿足|完成|编写|撰写|参与)"
    ),
]
_META = [
    re.compile(
        r"\bas\s+an?\s+(?:AI|artificial\s+intelligence|AI\s+(?:language\s+)?model|AI\s+assistant)\b", re.IGNORECASE
    ),
    re.compile(r"\bas\s+a\s+(?:large\s+)?language\s+model\b", re.IGNORECASE),
    re.compile(
        r"\b(?:here|below)\s+(?:is|are)\s+(?:a|an|the|some|your|\d+|\w+)?\s*(?:\w+\s+)?"
        r"(?:prompts?|questions?|examples?|test\s+cases?|queries)\b",
        re.IGNORECASE,
    ),
    re.compile(
        r"^\s*(?:sure|certainly|of\s+course|absolutely|okay|ok|alright|great)\b[,!.]?\s+(?:here|below|I)\b",
        re.IGNORECASE,
    ),
    re.compile(r"^\s*(?:here\s+is|here\s+are|here'?s|below\s+(?:is|are))\b", re.IGNORECASE),
    re.compile(r"^\s*(?:prompt|question|test\s+case|query|example)\s*#?\d*\s*[:：]", re.IGNORECASE),
    re.compile(r"\bthis\s+(?:prompt|question)\s+(?:is\s+designed|aims|tests|is\s+meant)\b", re.IGNORECASE),
    re.compile(
        r"\[(?:insert|placeholder|your)[^\]]*\]|\{(?:prompt|question|topic)\}|<\s*/?\s*prompt\s*>", re.IGNORECASE
    ),
    re.compile(
        r"作为(?:一个|一名)?(?:AI|人工智能|语言模型|語言模型|AI助手|人工智能助手|大语言模型|大型语言模型)",
        re.IGNORECASE,
    ),
    re.compile(r"^\s*(?:好的|当然|當然|没问题|沒問題|可以的)[，,!！。]?\s*(?:以下|下面|这里|這裡|这是|這是|我)"),
    re.compile(
        r"(?:以下|下面)(?:是|为|為)(?:\d+|[一二三四五六七八九十几幾]+)?(?:个|個|条|條|道)?[^。\n]{0,12}?(?:提示词|提示|问题|問題|示例|例子|测试用例|測試用例)"
    ),
    re.compile(r"^\s*(?:提示词|提示|问题|問題|测试用例|測試用例|示例)\s*\d*\s*[:：]"),
]


def letter_shares(text: str) -> tuple[float, float, float, int]:
    """(CJK share, ASCII-letter share, kana/hangul share, number of letters) of ``text``."""
    letters = [ch for ch in text if ch.isalpha()]
    n = len(letters)
    if n == 0:
        return 0.0, 0.0, 0.0, 0
    cjk = sum(1 for ch in letters if _CJK.match(ch))
    ascii_ = sum(1 for ch in letters if ch.isascii())
    kana = sum(1 for ch in letters if _KANA_HANGUL.match(ch))
    return cjk / n, ascii_ / n, kana / n, n


def is_request(text: str, lang: str) -> bool:
    """A question mark, or a request/question cue (at a sentence start in en, anywhere in zh)."""
    if "?" in text or "？" in text:
        return True
    if lang == "zh":
        return bool(_ZH_REQUEST.search(text))
    if _EN_REQUEST_ANY.search(text):
        return True
    return any(_EN_REQUEST_START.match(s) for s in _SENTENCE_SPLIT.split(text) if s.strip())


def _first_match(patterns: list[re.Pattern[str]], text: str) -> str | None:
    for p in patterns:
        m = p.search(text)
        if m:
            return " ".join(m.group(0).split())
    return None


def _min_chars() -> dict[Lang, int]:
    return {"zh": 5, "en": 15}


def _max_chars() -> dict[Lang, int]:
    # Generous maxima: attack prompts (role-play, DeepInception) legitimately run to ~1-2k chars.
    return {"zh": 2000, "en": 5000}


class QualityOptions(StrategyOptions):
    min_chars: dict[Lang, int] = Field(default_factory=_min_chars)
    max_chars: dict[Lang, int] = Field(default_factory=_max_chars)
    check_language: bool = True
    zh_min_cjk_share: float = Field(0.3, ge=0.0, le=1.0)
    zh_max_kana_share: float = Field(0.1, ge=0.0, le=1.0)
    en_min_ascii_share: float = Field(0.9, ge=0.0, le=1.0)
    en_max_cjk_share: float = Field(0.02, ge=0.0, le=1.0)
    require_request: bool = True
    check_refusal: bool = True
    check_meta: bool = True
    extra_meta_patterns: list[str] = Field(default_factory=list)  # regexes, case-insensitive


@SELECTORS.register("quality")
class Quality(Strategy):
    """Drop rows in the wrong language, too short/long, not a request, refusals, meta-text."""

    Options = QualityOptions
    options: QualityOptions

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003 - passthrough
        super().__init__(*args, **kwargs)
        try:
            self._extra = [re.compile(p, re.IGNORECASE) for p in self.options.extra_meta_patterns]
        except re.error as e:
            raise ConfigError(f"selection strategy 'quality': option 'extra_meta_patterns': bad regex ({e})") from None

    def problems(self, text: str, lang: str) -> list[str]:
        """Every failed check for one prompt, as reason strings (empty list: the prompt passes)."""
        cfg = self.options
        out: list[str] = []
        text = str(text)
        stripped = text.strip()
        n = len(stripped)
        lo = cfg.min_chars.get(lang, 1)  # type: ignore[call-overload]
        hi = cfg.max_chars.get(lang)  # type: ignore[call-overload]
        if n < lo:
            out.append(f"too short: {n} chars < min_chars[{lang}] {lo}")
        if hi is not None and n > hi:
            out.append(f"too long: {n} chars > max_chars[{lang}] {hi}")
        if cfg.check_language:
            cjk, asc, kana, letters = letter_shares(stripped)
            if letters == 0:
                out.append(f"language: no letters, cannot be {lang}")
            elif lang == "zh":
                if cjk < cfg.zh_min_cjk_share:
                    out.append(f"language: CJK share {cjk:.2f} < zh_min_cjk_share {cfg.zh_min_cjk_share:g} for zh")
                if kana > cfg.zh_max_kana_share:
                    out.append(
                        f"language: kana/hangul share {kana:.2f} > zh_max_kana_share {cfg.zh_max_kana_share:g} for zh"
                    )
            else:
                if asc < cfg.en_min_ascii_share:
                    out.append(
                        f"language: ASCII-letter share {asc:.2f} < en_min_ascii_share {cfg.en_min_ascii_share:g} for en"
                    )
                if cjk > cfg.en_max_cjk_share:
                    out.append(f"language: CJK share {cjk:.2f} > en_max_cjk_share {cfg.en_max_cjk_share:g} for en")
        if cfg.check_refusal:
            hit = _first_match(_REFUSAL, stripped)
            if hit:
                out.append(f"refusal text: matched {hit!r}")
        if cfg.check_meta:
            hit = _first_match(_META + self._extra, stripped)
            if hit:
                out.append(f"meta-text: matched {hit!r}")
        if cfg.require_request and not is_request(stripped, lang):
            out.append("not a request or question: no question mark and no request cue")
        return out

    def select(self, df: pd.DataFrame, ctx: SelectionContext) -> SelectionResult:
        reasons: dict[int, str] = {}
        for i, (text, lang) in enumerate(zip(df["prompt"].tolist(), df["lang"].tolist(), strict=True)):
            found = self.problems(text, lang)
            if found:
                reasons[i] = "; ".join(found)
        return self.split(df, reasons)
