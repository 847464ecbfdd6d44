"""Group terms: which words name which protected group, and the counterfactual swap of them.

Why our own short lists: counterfactual data augmentation and the template set need
word-level pairs (``he`` ↔ ``she``, ``muslims`` ↔ ``christians``); RedditBias ships
phrase-level opposites for its own sentences only. A swap replaces whole words,
case-insensitively, keeping the first letter's case; words not in a family are untouched.
Ambiguous pronouns are resolved one way (``her`` → ``his``), which is the usual CDA choice.
"""

from __future__ import annotations

import re
from typing import Final

from trustflow.errors import ConfigError

# family -> list of (term of group A, term of group B); group names are FAMILY_GROUPS[family]
_PAIRS: Final[dict[str, list[tuple[str, str]]]] = {
    "gender": [
        ("she", "he"),
        ("her", "his"),
        ("hers", "his"),
        ("herself", "himself"),
        ("woman", "man"),
        ("women", "men"),
        ("female", "male"),
        ("females", "males"),
        ("girl", "boy"),
        ("girls", "boys"),
        ("mother", "father"),
        ("mothers", "fathers"),
        ("daughter", "son"),
        ("daughters", "sons"),
        ("sister", "brother"),
        ("sisters", "brothers"),
        ("wife", "husband"),
        ("wives", "husbands"),
        ("aunt", "uncle"),
        ("niece", "nephew"),
        ("mrs", "mr"),
        ("ms", "mr"),
        ("lady", "gentleman"),
        ("ladies", "gentlemen"),
        ("queen", "king"),
        ("mom", "dad"),
        ("moms", "dads"),
        ("girlfriend", "boyfriend"),
        ("grandmother", "grandfather"),
    ],
    "race": [("black", "white"), ("blacks", "whites"), ("african", "european"), ("africans", "europeans")],
    "religion": [
        ("jew", "christian"),
        ("jews", "christians"),
        ("jewish", "christian"),
        ("judaism", "christianity"),
        ("muslim", "christian"),
        ("muslims", "christians"),
        ("islam", "christianity"),
        ("islamic", "christian"),
        ("synagogue", "church"),
        ("mosque", "church"),
    ],
    "orientation": [
        ("gay", "straight"),
        ("gays", "straights"),
        ("lesbian", "straight"),
        ("lesbians", "straights"),
        ("homosexual", "heterosexual"),
        ("homosexuals", "heterosexuals"),
        ("bisexual", "heterosexual"),
        ("queer", "straight"),
        ("lgbtq", "straight"),
    ],
}
FAMILIES: Final = tuple(_PAIRS)
# RedditBias's groups belong to these families (the other side is the group it is swapped to)
REDDITBIAS_FAMILY: Final[dict[str, str]] = {
    "female": "gender",
    "black": "race",
    "jews": "religion",
    "muslims": "religion",
    "lgbtq": "orientation",
}


def _swap_map(families: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for fam in families:
        if fam not in _PAIRS:
            raise ConfigError(f"unknown group-term family {fam!r} (known: {', '.join(FAMILIES)})")
        for a, b in _PAIRS[fam]:
            out.setdefault(a, b)  # first pair wins: "christian" maps back to "jewish" only once
            out.setdefault(b, a)
    return out


def swap_terms(text: str, families: tuple[str, ...] = FAMILIES) -> str:
    """``text`` with every group term of ``families`` replaced by its counterpart."""
    table = _swap_map(families)
    pattern = re.compile(r"\b(" + "|".join(sorted(map(re.escape, table), key=len, reverse=True)) + r")\b", re.I)

    def repl(m: re.Match[str]) -> str:
        word = m.group(0)
        new = table[word.lower()]
        return new[:1].upper() + new[1:] if word[:1].isupper() else new

    return pattern.sub(repl, text)


def has_group_term(text: str, families: tuple[str, ...] = FAMILIES) -> bool:
    """Whether ``text`` holds a term that ``swap_terms`` would change."""
    return swap_terms(text, families) != text
