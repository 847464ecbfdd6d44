"""Model cards: the YAML a team drops under ``models/`` in the bucket to get a model evaluated.

Why a card and not the checkpoint alone: a checkpoint does not say what it is (an LLM
endpoint? a classifier for which dataset?) nor which evaluations a team wants. The card
names the model and says how to reach it; the storage-event trigger runs
``evaluate_model_card`` on every new or changed card (see docs/operations.md).

```yaml
name: qwen-1.5b-chat            # leaderboard label (letters, digits, . _ -)
kind: llm                       # llm | classifier
model: openai:http://gpu-box:8000/v1?model=Qwen/Qwen2.5-1.5B-Instruct   # kind llm: an LLM spec
# kind classifier: a checkpoint key relative to the store root (ckpt: or torchscript: file),
# or any classifier spec the robustness flow accepts (run:<training run>, a registry name)
# checkpoint: models/resnet18-pgd/final.pt
# checkpoint_format: ckpt      # ckpt | torchscript
seval:                          # kind llm; omit to use the defaults below
  suite: auto
  critic: default
  per_dimension: 1
  attacks_per_base: 1
  max_tokens: 96
robustness:                     # kind classifier
  dataset: digits
  attacks: [clean, fgsm, pgd]
  eps: 0.1
  limit: 256
```
Loaded with ``yaml.safe_load``; unknown fields are errors naming the card and the field.
"""

from __future__ import annotations

from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from trustflow.errors import InputError


class SevalRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    suite: str = "auto"
    critic: str = "default"
    langs: list[str] = Field(default_factory=lambda: ["zh", "en"])
    per_dimension: int = Field(default=1, ge=1)
    attacks_per_base: int = Field(default=1, ge=0)
    max_tokens: int = Field(default=96, ge=1)


class RobustnessRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: str = "digits"
    attacks: list[str] = Field(default_factory=lambda: ["clean", "fgsm", "pgd"])
    eps: float = Field(default=8 / 255, gt=0)
    corruptions: list[str] = Field(default_factory=list)
    limit: int | None = Field(default=None, ge=1)


class ModelCard(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")
    kind: Literal["llm", "classifier"]
    model: str | None = None
    checkpoint: str | None = None
    checkpoint_format: Literal["ckpt", "torchscript"] = "ckpt"
    seval: SevalRequest | None = None
    robustness: RobustnessRequest | None = None

    @model_validator(mode="after")
    def _check_kind(self) -> ModelCard:
        if self.kind == "llm":
            if not self.model:
                raise ValueError(
                    "kind llm needs 'model' (an LLM spec such as openai:URL?model=NAME or pkg:smollm2-135m)"
                )
            if self.robustness is not None:
                raise ValueError("'robustness' applies to kind classifier only")
            self.seval = self.seval or SevalRequest()
        else:
            if bool(self.model) == bool(self.checkpoint):
                raise ValueError(
                    "kind classifier needs exactly one of 'model' (a classifier spec) or 'checkpoint' (a store key)"
                )
            if self.seval is not None:
                raise ValueError("'seval' applies to kind llm only")
            self.robustness = self.robustness or RobustnessRequest()
        return self


def parse_model_card(text: str | bytes, where: str) -> ModelCard:
    """Validate a card; errors name ``where`` (the object key) and the offending field."""
    try:
        doc: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"{where}: not valid YAML ({exc})") from None
    if not isinstance(doc, dict):
        raise InputError(f"{where}: a model card is a YAML mapping (name, kind, model | checkpoint, …)")
    try:
        return ModelCard.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "card"
        raise InputError(f"{where}: field {field!r}: {first['msg']}") from None
