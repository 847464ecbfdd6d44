"""Counterfactual data augmentation: every training text with a group term gets a swapped twin.

``she`` ↔ ``he``, ``muslims`` ↔ ``christians``… (``data/fairness/terms.py``, whole words);
the twin keeps the label, so the task cannot lean on which group is named. Training is then
plain fine-tuning on the enlarged set. ``families`` limits the swaps (default: all).
"""

from __future__ import annotations

import numpy as np
from pydantic import Field, field_validator

from trustflow.data.fairness.terms import FAMILIES, swap_terms
from trustflow.registry import Options
from trustflow.tasks.fairness.data import TextData
from trustflow.tasks.fairness.methods.base import FAIRNESS_METHODS, Batch, FairnessMethod, task_loss
from trustflow.tasks.fairness.model import FairModel


class CdaOptions(Options):
    families: str = Field(default=",".join(FAMILIES), description="comma-separated group-term families")

    @field_validator("families")
    @classmethod
    def _known(cls, value: str) -> str:
        unknown = [f for f in value.split(",") if f not in FAMILIES]
        if unknown:
            raise ValueError(f"unknown families {unknown} (known: {', '.join(FAMILIES)})")
        return value


@FAIRNESS_METHODS.register("cda", options=CdaOptions, example="cda?families=gender,race")
class Cda(FairnessMethod[CdaOptions]):
    def prepare(self, data: TextData) -> TextData:
        fams = tuple(self.options.families.split(","))
        twins = [(i, swap_terms(t, fams)) for i, t in enumerate(data.texts)]
        twins = [(i, t) for i, t in twins if t != data.texts[i]]
        idx = np.array([i for i, _ in twins], dtype=np.int64)
        self.added = len(twins)
        return TextData(
            texts=data.texts + [t for _, t in twins],
            y=np.concatenate([data.y, data.y[idx]]),
            z=np.concatenate([data.z, data.z[idx]]),  # the twin keeps its row's attribute (unused in training)
            classes=data.classes,
            groups=data.groups,
        )

    def step(self, model: FairModel, batch: Batch) -> dict[str, float]:
        assert self.optimizer is not None
        loss = task_loss(model, batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"task": loss.item()}
