"""TAP: tree of attacks with pruning.

Each round (tree depth) every live node asks the attacker for ``branching`` rewrites, each
with a different seeded strategy hint (so greedy decoding still gives distinct children).
Phase-one pruning drops off-topic children before the target is asked: a child whose prompt
keeps less than ``min_overlap`` of the goal's content terms (``base.topic_terms``: Latin
word stems, CJK bigrams; a cheap, deterministic, bilingual stand-in for TAP's evaluator-LLM on-topic question; 0 turns it off). The target
answers the rest, the critic scores them, and phase-two pruning keeps the ``width`` best by
score (ties by branch id). The loop stops at the first unsafe answer in the tree.
"""

from __future__ import annotations

import random

from pydantic import Field

from trustflow.tasks.seval.adaptive import _prompts as P
from trustflow.tasks.seval.adaptive.base import ADAPTIVE_ATTACKS, AdaptiveOptions, Child, Lang, Node, goal_overlap
from trustflow.tasks.seval.adaptive.pair import PromptRewriter


class TapOptions(AdaptiveOptions):
    rounds: int = Field(default=4, ge=1, le=20, description="tree depth")
    branching: int = Field(default=3, ge=1, le=8, description="children per live node and round")
    width: int = Field(default=4, ge=1, le=32, description="live nodes kept after each round")
    min_overlap: float = Field(
        default=0.1, ge=0.0, le=1.0, description="off-topic below this share of the goal's terms"
    )


@ADAPTIVE_ATTACKS.register("tap", options=TapOptions, example="tap?rounds=2&branching=2&width=2")
class Tap(PromptRewriter):
    def children(self, node: Node, goal: str, lang: Lang, round_no: int, rng: random.Random) -> list[Child]:
        strategies = list(P.STRATEGIES[lang])
        rng.shuffle(strategies)
        out = []
        for j in range(int(self.options.branching)):
            hint = strategies[j % len(strategies)]
            branch = f"{node.branch}.{j}" if node.branch else str(j)
            out.append(Child(branch, node, self.attacker_request(node, goal, lang, round_no, hint), hint))
        return out

    def on_topic(self, prompt: str, goal: str) -> bool:
        return goal_overlap(prompt, goal) >= float(self.options.min_overlap)

    def select(self, nodes: list[Node]) -> list[Node]:
        return sorted(nodes, key=lambda n: (-n.score, n.branch))[: int(self.options.width)]
