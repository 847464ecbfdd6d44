"""The unedited image: every attribute sweep's reference level."""

from __future__ import annotations

import numpy as np

from trustflow.registry import Options
from trustflow.tasks.attributes.editors.base import EDITORS, Editor, EditResult, MaskedObject


class OriginalOptions(Options):
    """No options: the original has one level."""


@EDITORS.register("original", options=OriginalOptions)
class OriginalEditor(Editor[OriginalOptions]):
    """Returns the object's image and mask unchanged; ``value`` is 0 (no edit)."""

    attribute = "original"

    def levels(self) -> list[str]:
        return ["original"]

    def edit(self, obj: MaskedObject, level: str, rng: np.random.Generator) -> EditResult:
        return EditResult(image=obj.image.copy(), mask=obj.mask.copy(), value=0.0)
