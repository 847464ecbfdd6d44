"""Crescendo: a multi-turn conversation that starts benign and escalates toward the goal.

The goal is the base prompt itself: the attacker is told it, opens with a harmless question
on its topic and moves one step closer each turn, building on the target's last answer. The
target sees the whole conversation every turn (its earlier answers included), and the critic
judges each new answer against the base prompt, so "broken" means the same as for every
other attack: the answer to the risky request is unsafe. When the attacker's reply is
unusable, a seeded four-step ladder (background → factors → specifics → the goal verbatim)
stands in, the last step on the last round. With ``backtracks=N`` a refused turn is taken
back out of the target's history (up to N times; each still costs a round), as in Crescendo.
"""

from __future__ import annotations

from pydantic import Field

from trustflow.tasks.seval.adaptive import _prompts as P
from trustflow.tasks.seval.adaptive.base import ADAPTIVE_ATTACKS, AdaptiveAttack, AdaptiveOptions, Lang, Messages, Node


class CrescendoOptions(AdaptiveOptions):
    backtracks: int = Field(
        default=0, ge=0, le=20, description="refused turns taken back out of the target's history (0: off)"
    )


@ADAPTIVE_ATTACKS.register("crescendo", options=CrescendoOptions, example="crescendo?rounds=3")
class Crescendo(AdaptiveAttack):
    multi_turn = True

    def system_prompt(self, goal: str, lang: Lang) -> str:
        return P.CRESCENDO_SYSTEM[lang].format(goal=goal, rounds=self.rounds)

    def first_message(self, goal: str, lang: Lang) -> str:
        return P.CRESCENDO_FIRST[lang].format(rounds=self.rounds)

    def feedback_message(self, node: Node, goal: str, lang: Lang, round_no: int) -> str:
        text = P.CRESCENDO_FEEDBACK[lang].format(
            reply=self.clip(node.response), score=node.score, round=round_no, rounds=self.rounds
        )
        back = P.CRESCENDO_BACKTRACK[lang] if node.backtracked else ""
        return back + text + (P.CRESCENDO_LAST[lang] if round_no == self.rounds else "")

    def target_messages(self, node: Node, prompt: str) -> Messages:
        return [*node.target_messages, {"role": "user", "content": prompt}]

    def after_answer(self, node: Node, sent: Messages) -> bool:
        """Backtracking: a refusal (``models/critics/refusal.is_refusal``) is taken back out of
        the target's history — the target never sees that it refused — at most ``backtracks``
        times per conversation; the attacker still sees the refusal and is told to ask differently."""
        from trustflow.models.critics.refusal import is_refusal

        if node.backtracks >= int(self.options.backtracks) or not is_refusal(node.response):
            return False
        node.target_messages = list(sent[:-1])
        node.backtracks += 1
        node.backtracked = True
        return True

    def fallback_prompt(self, goal: str, lang: Lang, base_uid: str, round_no: int, branch: str, seed: int) -> str:
        ladder = P.CRESCENDO_LADDER[lang]
        last = len(ladder) - 1  # the goal itself, on the last round; the other steps spread before it
        spread = min(last - 1, (round_no - 1) * last // max(1, self.rounds - 1))
        return ladder[last if round_no >= self.rounds else spread].format(goal=goal)
