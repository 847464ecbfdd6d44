"""A preview grid PNG of one object across every edit: one row per editor, one cell per level.

Each cell is the edited image scaled to ``cell`` pixels on its longer side, captioned with
the level asked for and the value realised, so a reviewer sees at a glance that the object
is kept and the attribute changes as named.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from PIL import Image, ImageDraw

from trustflow.tasks.attributes.editors.base import MaskedObject
from trustflow.tasks.attributes.make import DEFAULT_EDITORS, build_editor, edit_rng

CAPTION_PX = 14


def preview_grid(
    obj: MaskedObject, editor_specs: Sequence[str] = DEFAULT_EDITORS, seed: int = 0, cell: int = 160
) -> bytes:
    """PNG bytes of the grid (rows: editors in the given order; columns: their levels)."""
    rows = []
    for spec in editor_specs:
        editor, _ = build_editor(spec)
        cells = []
        for level in editor.levels():
            result = editor.edit(obj, level, edit_rng(seed, obj.object_id, editor.attribute, level))
            img = Image.fromarray(result.image)
            img.thumbnail((cell, cell), Image.Resampling.LANCZOS)
            cells.append((f"{editor.attribute} {level}: {result.value:.3g}", img))
        rows.append(cells)
    width = cell * max(len(r) for r in rows)
    height = (cell + CAPTION_PX) * len(rows)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for r, cells in enumerate(rows):
        for c, (caption, img) in enumerate(cells):
            x, y = c * cell, r * (cell + CAPTION_PX)
            canvas.paste(img, (x + (cell - img.width) // 2, y + CAPTION_PX + (cell - img.height) // 2))
            draw.text((x + 2, y + 1), caption, fill=(0, 0, 0))
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return buf.getvalue()


__all__ = ["preview_grid"]
