"""Object direction: the object rotated in the image plane, with its mask, background filled.

A level is an angle in degrees, counter-clockwise (ImageNet-E's toolkit uses −180..180 in
steps of 10). The object turns about its box centre on its own inpainted background; a
rotated object that would leave the frame is shifted back in by whole pixels, and one that
no longer fits is scaled down just enough to fit (never cropped). Rotation resamples the
object (bilinear, premultiplied: see compose.py), so its pixels are kept up to that
resampling; multiples of 90° are pixel-exact.

``value`` is the rotation applied, in degrees; it is exact by construction (the warp uses
that angle), which the tests check on 90° turns against ``numpy.rot90``.
"""

from __future__ import annotations

import numpy as np
from pydantic import field_validator

from trustflow.registry import Options
from trustflow.tasks.attributes.compose import Levels, clean_background, composite, transform_object
from trustflow.tasks.attributes.editors.base import EDITORS, Editor, EditResult, MaskedObject


class DirectionOptions(Options):
    """``angles``: degrees, counter-clockwise, in [-180, 180] (comma-separated)."""

    angles: Levels = ("-90", "-45", "-20", "20", "45", "90", "180")

    @field_validator("angles")
    @classmethod
    def _valid(cls, angles: tuple[str, ...]) -> tuple[str, ...]:
        for a in angles:
            try:
                ok = -180 <= float(a) <= 180
            except ValueError:
                ok = False
            if not ok:
                raise ValueError(f"an angle is a number of degrees in [-180, 180], got {a!r}")
        if not angles:
            raise ValueError("at least one angle")
        return angles


@EDITORS.register("direction", options=DirectionOptions)
class DirectionEditor(Editor[DirectionOptions]):
    """Rotate the object by an angle; value = the angle (degrees)."""

    attribute = "direction"

    def levels(self) -> list[str]:
        return list(self.options.angles)

    def edit(self, obj: MaskedObject, level: str, rng: np.random.Generator) -> EditResult:
        angle = float(level)
        layer, mask, _ = transform_object(obj.image, obj.mask, 1.0, angle)
        image = composite(clean_background(obj), layer, mask)
        return EditResult(image=image, mask=mask, value=angle)
