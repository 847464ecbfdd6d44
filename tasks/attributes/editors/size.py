"""Object size: the object scaled to a given share of the frame, on its inpainted background.

A level is a target **area ratio** (object pixels / frame pixels), e.g. ``0.2``, or ``full``:
the largest size at which the whole object still fits in the frame. The object is scaled
about its box centre (as ImageNet-E's toolkit does) and shifted by whole pixels only when it
would leave the frame; it is never cropped. Because a resampled mask has a pixel count that
only approximates scale² (it jumps by whole rows), the new mask is the ``round(r × frame)``
best-covered pixels of the scaled object (compose.transform_object's ``area``), so the
realised ratio is the target to the pixel. A target larger than ``full`` gives ``full``'s size.

``value`` is the realised area ratio of the output mask.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import field_validator

from trustflow.registry import Options
from trustflow.tasks.attributes.compose import Levels, clean_background, composite, transform_object
from trustflow.tasks.attributes.editors.base import EDITORS, Editor, EditResult, MaskedObject


class SizeOptions(Options):
    """``ratios``: area ratios (0 < r < 1) or ``full``, comma-separated."""

    ratios: Levels = ("full", "0.5", "0.2", "0.1", "0.05")

    @field_validator("ratios")
    @classmethod
    def _valid(cls, ratios: tuple[str, ...]) -> tuple[str, ...]:
        for r in ratios:
            if r != "full" and not (_is_float(r) and 0 < float(r) < 1):
                raise ValueError(f"a size level is 'full' or an area ratio in (0, 1), got {r!r}")
        if not ratios:
            raise ValueError("at least one size level")
        return ratios


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@EDITORS.register("size", options=SizeOptions)
class SizeEditor(Editor[SizeOptions]):
    """Scale the object to an area ratio of the frame; value = realised area ratio."""

    attribute = "size"

    def levels(self) -> list[str]:
        return list(self.options.ratios)

    def edit(self, obj: MaskedObject, level: str, rng: np.random.Generator) -> EditResult:
        frame = obj.mask.size
        current = obj.mask.sum() / frame
        target = 1.0 if level == "full" else float(level)
        scale = math.sqrt(target / current)
        layer, mask, used = transform_object(obj.image, obj.mask, scale, 0.0)
        if level != "full" and used >= scale:  # it fits: make the pixel count exact
            layer, mask, _ = transform_object(obj.image, obj.mask, scale, 0.0, area=round(target * frame))
        image = composite(clean_background(obj), layer, mask)
        return EditResult(image=image, mask=mask, value=float(mask.sum() / frame))
