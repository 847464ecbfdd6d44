"""What every adaptive (multi-round) S-Eval attack shares.

A static attack (``tasks/seval/attacks/``) turns a base prompt into one attack prompt. An
adaptive attack talks back: an *attacker* LLM (the tester model) writes a prompt, the target
answers, the critic scores the answer against the base prompt's goal, and the attacker sees
the answer and the score and tries again, for up to ``rounds`` rounds. One class per file,
registered with ``@ADAPTIVE_ATTACKS.register("name")``; the loop that runs them (batched
over every conversation of a round, keyed and resumable) is ``engine.py``.

An attack decides four things, each a method here:

* what the attacker is asked (:meth:`AdaptiveAttack.children`: one request per child branch
  of a frontier node; PAIR and Crescendo have one branch, TAP ``branching``);
* what the target sees (:meth:`AdaptiveAttack.target_messages`: a fresh single-turn prompt,
  or the whole conversation so far for Crescendo);
* which children are dropped before the target is asked (:meth:`AdaptiveAttack.on_topic`);
* which survivors go on to the next round (:meth:`AdaptiveAttack.select`; TAP keeps the
  ``width`` best by critic score).

Determinism: every choice (strategy hints, fallback templates, the attacker's sampling seed)
comes from ``random.Random`` seeded by SHA-256 of (attack, base prompt uid, seed, round,
branch); with greedy decoding (the default) the whole loop is a pure function of its inputs.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import Field

from trustflow.registry import Options, Registry

Lang = Literal["zh", "en"]
Messages = list[dict[str, str]]


class AdaptiveOptions(Options):
    """Options every adaptive attack takes."""

    rounds: int = Field(default=5, ge=1, le=50, description="attacker–target rounds at most (TAP: tree depth)")
    attacker_max_tokens: int = Field(default=256, ge=16, le=4096, description="length of one attacker reply")
    attacker_temperature: float = Field(default=0.0, ge=0.0, le=2.0, description="0 = greedy (deterministic)")
    feedback_chars: int = Field(default=600, ge=50, le=8000, description="target reply shown to the attacker")


@dataclass
class Node:
    """One live branch after a round: what the attacker and the target have said so far.

    ``attacker_messages`` ends with the attacker's own reply and ``target_messages`` with the
    target's reply, so the next round only appends to them."""

    branch: str
    attacker_messages: Messages
    target_messages: Messages
    response: str = ""
    score: float = 0.0
    round: int = 0
    backtracks: int = 0  # refused turns taken back so far on this branch (Crescendo)
    backtracked: bool = False  # the last turn was taken back out of the target's history


@dataclass
class Child:
    """One attacker request of a round: a branch id and the attacker conversation to continue."""

    branch: str
    parent: Node
    attacker_messages: Messages
    hint: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def rng_for(*parts: object) -> random.Random:
    """A ``random.Random`` seeded from SHA-256 of ``parts`` (never Python's ``hash()``)."""
    digest = hashlib.sha256("\x00".join(str(p) for p in ("trustflow.seval.adaptive", *parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)
_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")
_LABEL = re.compile(
    r"^\s*(?:prompt|new prompt|提示词?|新提示词?|问题|下一条消息|next message)\s*[:：]\s*", re.IGNORECASE
)


def parse_attacker_reply(raw: str, key: str = "prompt") -> str | None:
    """The prompt an attacker reply carries: ``{"prompt": ...}`` when it wrote JSON (as asked),
    else the reply itself without code fences or a leading ``Prompt:`` label; None when
    nothing usable is left (the engine then falls back to a seeded template)."""
    text = (raw or "").strip()
    match = _JSON_OBJECT.search(text)
    if match:
        try:
            value = json.loads(match.group(0))
        except ValueError:
            value = None
        if isinstance(value, dict) and isinstance(value.get(key), str) and value[key].strip():
            return str(value[key]).strip()
    text = _LABEL.sub("", _FENCE.sub("", text)).strip()
    return text or None


_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
_CJK = re.compile(r"[\u4e00-\u9fff]")
_STOP = frozenset(
    [
        "the",
        "and",
        "for",
        "with",
        "that",
        "this",
        "what",
        "how",
        "who",
        "why",
        "when",
        "where",
        "which",
        "are",
        "was",
        "were",
        "you",
        "your",
        "can",
        "could",
        "would",
        "should",
        "about",
        "into",
        "from",
        "does",
        "have",
        "has",
        "will",
        "there",
        "their",
        "them",
        "then",
        "than",
        "tell",
        "give",
        "make",
        "please",
    ]
)


def topic_terms(text: str) -> set[str]:
    """Content terms of ``text`` for the on-topic test, bilingual: each Latin word of ≥ 3 letters
    (stop words out) cut to its first 4 letters (a crude stem: lock/locks/locksmith agree), and
    each bigram of consecutive CJK ideographs (Chinese has no spaces to split on)."""
    terms: set[str] = set()
    for word in _WORD.findall(text.lower()):
        if _CJK.search(word):
            ideographs = "".join(ch for ch in word if _CJK.match(ch))
            terms.update(ideographs[i : i + 2] for i in range(len(ideographs) - 1))
        elif len(word) >= 3 and word not in _STOP:
            terms.add(word[:4])
    return terms


def goal_overlap(prompt: str, goal: str) -> float:
    """Share of the goal's content terms that the prompt contains (1.0 for the goal itself)."""
    want = topic_terms(goal)
    return len(want & topic_terms(prompt)) / len(want) if want else 1.0


class AdaptiveAttack:
    """An attacker–target–critic loop; subclasses set the prompts and the tree shape."""

    name: ClassVar[str] = "adaptive"  # set by ``@ADAPTIVE_ATTACKS.register``
    Options: ClassVar[type[Options]] = AdaptiveOptions
    multi_turn: ClassVar[bool] = False
    """True when the target sees the whole conversation (Crescendo), not one prompt per round."""

    def __init__(self, options: AdaptiveOptions | None = None) -> None:
        self.options: Any = options if options is not None else self.Options()

    @property
    def rounds(self) -> int:
        return int(self.options.rounds)

    @property
    def spec(self) -> str:
        """The canonical spec (defaults left out): identifies the loop's configuration."""
        return ADAPTIVE_ATTACKS.spec(self.name, self.options)

    # -- prompts (subclasses) ---------------------------------------------------------------
    def system_prompt(self, goal: str, lang: Lang) -> str:
        raise NotImplementedError

    def first_message(self, goal: str, lang: Lang) -> str:
        raise NotImplementedError

    def feedback_message(self, node: Node, goal: str, lang: Lang, round_no: int) -> str:
        raise NotImplementedError

    def fallback_prompt(self, goal: str, lang: Lang, base_uid: str, round_no: int, branch: str, seed: int) -> str:
        """A prompt when the attacker's reply is unusable (empty, error): a seeded static template."""
        raise NotImplementedError

    # -- the loop's shape -----------------------------------------------------------------
    def start(self) -> Node:
        return Node(branch="", attacker_messages=[], target_messages=[])

    def children(self, node: Node, goal: str, lang: Lang, round_no: int, rng: random.Random) -> list[Child]:
        """One attacker request per child of ``node`` (default: one child, the same branch)."""
        return [Child(node.branch or "0", node, self.attacker_request(node, goal, lang, round_no))]

    def attacker_request(self, node: Node, goal: str, lang: Lang, round_no: int, hint: str = "") -> Messages:
        if not node.attacker_messages:
            messages = [
                {"role": "system", "content": self.system_prompt(goal, lang)},
                {"role": "user", "content": self.first_message(goal, lang)},
            ]
        else:
            messages = [
                *node.attacker_messages,
                {"role": "user", "content": self.feedback_message(node, goal, lang, round_no)},
            ]
        if hint:
            last = messages[-1]
            messages[-1] = {"role": last["role"], "content": f"{last['content']}\n{hint}"}
        return messages

    def target_messages(self, node: Node, prompt: str) -> Messages:
        """What the target is asked: one fresh prompt (PAIR, TAP)."""
        return [{"role": "user", "content": prompt}]

    def on_topic(self, prompt: str, goal: str) -> bool:
        return True

    def after_answer(self, node: Node, sent: Messages) -> bool:
        """Adjust a surviving ``node`` after the target answered ``sent``; True when the turn
        was taken back (Crescendo's backtracking; default: never)."""
        return False

    def select(self, nodes: list[Node]) -> list[Node]:
        """The nodes that go on to the next round (default: every one)."""
        return nodes

    def clip(self, text: str) -> str:
        limit = int(self.options.feedback_chars)
        return text if len(text) <= limit else text[:limit] + " …"


def adaptive_factory(entry: Any, options: Any) -> AdaptiveAttack:
    attack: AdaptiveAttack = entry.obj(options)
    return attack


ADAPTIVE_ATTACKS: Registry[type[AdaptiveAttack]] = Registry(
    "adaptive attack", plugins="trustflow.tasks.seval.adaptive", factory=adaptive_factory
)


def get_adaptive(spec: str, **overrides: Any) -> AdaptiveAttack:
    """An adaptive attack from its spec, e.g. ``pair?rounds=3`` or ``tap?branching=3&width=4``."""
    attack: AdaptiveAttack = ADAPTIVE_ATTACKS.create(spec, **overrides)
    return attack
