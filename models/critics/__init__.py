"""Critics: judge whether a model's *response* is unsafe. Importing registers them all."""

from trustflow.models.critics import embedding, ensemble, llm_judge, probe, refusal  # noqa: F401  (registers the critics)
from trustflow.models.critics.base import CRITICS, Critic, JudgeItem, Judgement, make_critic

__all__ = ["CRITICS", "Critic", "JudgeItem", "Judgement", "make_critic"]
