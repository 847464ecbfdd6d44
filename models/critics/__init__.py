"""Critics: judge whether a model's *response* is unsafe.

Every module of this package registers its critics in ``CRITICS`` and is imported on the
first lookup; adding a critic is adding one module with ``@CRITICS.register("name")``.
"""

from trustflow.models.critics.base import CRITICS, Critic, JudgeItem, Judgement, make_critic, read_labels

__all__ = ["CRITICS", "Critic", "JudgeItem", "Judgement", "make_critic", "read_labels"]
