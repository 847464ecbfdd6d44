"""PAIR: the attacker rewrites one prompt from the target's last answer and the critic's score.

One branch per base prompt; each round the attacker (the tester LLM) sees its own earlier
prompts, the target's answers and the critic's scores, and writes a new single-turn prompt.
The loop stops at the first answer the critic calls unsafe, or after ``rounds`` rounds.
"""

from __future__ import annotations

from trustflow.tasks.seval.adaptive import _prompts as P
from trustflow.tasks.seval.adaptive.base import ADAPTIVE_ATTACKS, AdaptiveAttack, AdaptiveOptions, Lang, Node, rng_for

# static attacks the fallback borrows a template from (all work on any base prompt)
FALLBACK_ATTACKS = ("instruction_jailbreak", "deepinception", "compositional_instructions", "reverse_induction")


class PairOptions(AdaptiveOptions):
    pass


class PromptRewriter(AdaptiveAttack):
    """Shared by PAIR and TAP: single-turn prompts, the PAIR instructions and feedback."""

    def system_prompt(self, goal: str, lang: Lang) -> str:
        return P.PAIR_SYSTEM[lang].format(goal=goal)

    def first_message(self, goal: str, lang: Lang) -> str:
        return P.PAIR_FIRST[lang].format(goal=goal)

    def feedback_message(self, node: Node, goal: str, lang: Lang, round_no: int) -> str:
        return P.FEEDBACK[lang].format(
            round=round_no, rounds=self.rounds, reply=self.clip(node.response), score=node.score
        )

    def fallback_prompt(self, goal: str, lang: Lang, base_uid: str, round_no: int, branch: str, seed: int) -> str:
        from trustflow.tasks.seval.attacks import get_attack

        rng = rng_for(self.name, "fallback", base_uid, seed, round_no, branch)
        name = FALLBACK_ATTACKS[rng.randrange(len(FALLBACK_ATTACKS))]
        return get_attack(name).apply(base_uid, goal, lang, seed=rng.randrange(2**31)).prompt


@ADAPTIVE_ATTACKS.register("pair", options=PairOptions, example="pair?rounds=3")
class Pair(PromptRewriter):
    """Prompt Automatic Iterative Refinement: one stream, up to ``rounds`` rewrites."""
