"""Object position: the object moved, whole, to a grid of places in the frame.

A level names where the object's box goes, as fractions of the room it has: ``fx,fy`` in
[0, 1] puts the box's left edge at ``round(fx × (W − box width))`` and its top at
``round(fy × (H − box height))``, so every level keeps the whole object in the frame (a
frame-filling object has no room and stays put). The default levels are the 3×3 grid
``top-left … bottom-right`` (``centre`` = ``0.5,0.5``). The shift is in whole pixels, so the
object's pixels are exact; the background is the object's own inpainted background.

``value`` is the realised displacement of the object's box centre, in pixels (measured on
the output mask against the input mask).
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import field_validator

from trustflow.registry import Options
from trustflow.tasks.attributes.compose import Levels, clean_background, composite, mask_box, shift_object
from trustflow.tasks.attributes.editors.base import EDITORS, Editor, EditResult, MaskedObject

GRID = {
    "top-left": (0.0, 0.0),
    "top": (0.5, 0.0),
    "top-right": (1.0, 0.0),
    "left": (0.0, 0.5),
    "centre": (0.5, 0.5),
    "right": (1.0, 0.5),
    "bottom-left": (0.0, 1.0),
    "bottom": (0.5, 1.0),
    "bottom-right": (1.0, 1.0),
}


def place(level: str) -> tuple[float, float]:
    """(fx, fy) of a level: a grid name or ``fx;fy`` / ``fx:fy`` fractions in [0, 1]."""
    if level in GRID:
        return GRID[level]
    for sep in (";", ":"):
        if sep in level:
            fx, fy = (float(v) for v in level.split(sep, 1))
            if 0 <= fx <= 1 and 0 <= fy <= 1:
                return fx, fy
    raise ValueError(f"a position level is one of {', '.join(GRID)} or 'fx;fy' in [0, 1], got {level!r}")


class PositionOptions(Options):
    """``places``: grid names or ``fx;fy`` fractions (comma-separated)."""

    places: Levels = tuple(GRID)

    @field_validator("places")
    @classmethod
    def _valid(cls, places: tuple[str, ...]) -> tuple[str, ...]:
        for p in places:
            place(p)
        if not places:
            raise ValueError("at least one position level")
        return places


def target_offset(mask: np.ndarray, level: str) -> tuple[int, int]:
    """The (dx, dy) whole-pixel shift that puts the mask's box where ``level`` says."""
    h, w = mask.shape
    x0, y0, x1, y1 = mask_box(mask)
    fx, fy = place(level)
    return round(fx * (w - (x1 - x0))) - x0, round(fy * (h - (y1 - y0))) - y0


@EDITORS.register("position", options=PositionOptions)
class PositionEditor(Editor[PositionOptions]):
    """Move the object on a grid without cropping; value = box-centre displacement (px)."""

    attribute = "position"

    def levels(self) -> list[str]:
        return list(self.options.places)

    def edit(self, obj: MaskedObject, level: str, rng: np.random.Generator) -> EditResult:
        dx, dy = target_offset(obj.mask, level)
        layer, mask = shift_object(obj.image, obj.mask, dx, dy)
        image = composite(clean_background(obj), layer, mask)
        a, b = mask_box(obj.mask), mask_box(mask)
        moved = math.hypot((b[0] + b[2] - a[0] - a[2]) / 2, (b[1] + b[3] - a[1] - a[3]) / 2)
        return EditResult(image=image, mask=mask, value=float(moved))
