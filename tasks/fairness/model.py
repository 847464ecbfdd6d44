"""The model a fairness method produces: a classifier plus what sits between encoder and head.

``represent`` = h_c, or h_c + G(h_s) with a fairBERTs generator, then × P with an INLP
projection; the head reads that representation. The generator never touches the token
states or the encoder: it adds a vector to the pooled one only (tested). ``attach`` puts a
trained generator on another classifier (fairBERTs' transfer).
"""

from __future__ import annotations

import torch
from torch import nn

from trustflow.models.text.encoder import TextClassifier


class Generator(nn.Module):
    """fairBERTs' generator: token states → a perturbation of the pooled vector, ‖δ‖ ≤ ε·‖h_c‖.

    A per-token MLP, masked mean over tokens, a linear map to the hidden size; the raw output
    is projected onto the ball of radius ε·‖h_c‖ (per example), which is the hard half of
    the semantic-preservation constraint (the KL term in the method is the soft half)."""

    def __init__(self, hidden: int, width: int = 256, eps: float = 0.5) -> None:
        super().__init__()
        self.eps = eps
        self.token_mlp = nn.Sequential(nn.Linear(hidden, width), nn.GELU(), nn.Linear(width, width), nn.GELU())
        self.out = nn.Linear(width, hidden)
        nn.init.zeros_(self.out.bias)
        nn.init.normal_(self.out.weight, std=1e-3)  # start as (almost) the identity perturbation

    def forward(self, states: torch.Tensor, mask: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        m = mask.unsqueeze(-1).to(states.dtype)
        summary = (self.token_mlp(states) * m).sum(1) / m.sum(1).clamp_min(1.0)
        raw = self.out(summary)
        radius = self.eps * pooled.norm(dim=-1, keepdim=True)
        scale = torch.clamp(radius / raw.norm(dim=-1, keepdim=True).clamp_min(1e-12), max=1.0)
        return raw * scale


class FairModel(nn.Module):
    """Classifier + optional generator + optional linear projection (INLP)."""

    def __init__(self, classifier: TextClassifier, generator: Generator | None = None) -> None:
        super().__init__()
        self.classifier = classifier
        self.generator = generator
        self.register_buffer("projection", None)

    def set_projection(self, p: torch.Tensor | None) -> None:
        self.projection = p

    def represent_parts(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(token states h_s, pooled h_c, representation the head reads)."""
        states, pooled = self.classifier.encode(input_ids, attention_mask)
        rep = pooled
        if self.generator is not None:
            rep = rep + self.generator(states, attention_mask, pooled)
        if self.projection is not None:
            rep = rep @ self.projection
        return states, pooled, rep

    def represent(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.represent_parts(input_ids, attention_mask)[2]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.classifier.classify(self.represent(input_ids, attention_mask))


def attach(generator: Generator, target: FairModel | TextClassifier) -> FairModel:
    """``target``'s classifier with ``generator`` in front of its head (transfer, nothing retrained)."""
    clf = target.classifier if isinstance(target, FairModel) else target
    return FairModel(clf, generator)
