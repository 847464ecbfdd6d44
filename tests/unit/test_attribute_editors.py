"""Every attribute editor in the registry: object kept, label kept, value realised, seeded.

Tolerances: background and position keep the object's pixels exactly (same mask, or the mask
shifted by whole pixels); size and direction resample the object, so they are held to
per-channel mean colour of the object within 3 grey levels (objects of ≥ 150 pixels), no background colour inside the
new mask (a flat-coloured object stays within 1 level of its colour), and 90° turns exact.
Realised values: size ratio within 2 % of the target, position within 1 pixel of the asked
place, angle exactly the level.
"""

from __future__ import annotations

import numpy as np
import pytest

from trustflow.data.masked_objects import decode_image, decode_mask
from trustflow.tasks.attributes.compose import complexity_bin, mask_box, spectral_complexity
from trustflow.tasks.attributes.editors import EDITORS, MaskedObject
from trustflow.tasks.attributes.editors.position import place
from trustflow.tasks.attributes.make import build_editor, edit_rng, edit_rows
from trustflow.tasks.attributes.preview import preview_grid


def _object(flat: bool = False) -> MaskedObject:
    """A 64×48 frame: a textured 21×15 object (odd×odd: 90° turns land on the pixel grid)
    on a noisy background, so any bleed of background into the object shows."""
    rng = np.random.default_rng(1)
    h, w = 48, 64
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = rng.integers(0, 60, (h, w))
    img[..., 2] = rng.integers(150, 255, (h, w))
    mask = np.zeros((h, w), bool)
    mask[14:29, 20:41] = True
    mask[29:33, 26:35] = True  # a foot: not symmetric under rotation
    if flat:
        img[mask] = (230, 200, 20)
    else:
        yy, xx = np.nonzero(mask)
        img[yy, xx] = np.stack([200 + (xx % 5) * 10, 120 + (yy % 7) * 15, (xx + yy) % 40], axis=1)
    return MaskedObject("obj-1", "widget", img, mask)


def _editors() -> list[str]:
    return EDITORS.names()


@pytest.mark.parametrize("name", _editors())
def test_every_editor_keeps_frame_label_and_is_deterministic_by_seed(name: str) -> None:
    obj = _object()
    editor, _ = build_editor(name)
    assert editor.levels(), name
    for level in editor.levels():
        a = editor.edit(obj, level, edit_rng(0, obj.object_id, editor.attribute, level))
        b = editor.edit(obj, level, edit_rng(0, obj.object_id, editor.attribute, level))
        assert a.image.shape == obj.image.shape and a.image.dtype == np.uint8
        assert a.mask.shape == obj.mask.shape and a.mask.dtype == bool and a.mask.any()
        assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask) and a.value == b.value
        assert np.isfinite(a.value)
    rows = edit_rows([_row(obj)], [name], seed=5).to_pydict()
    assert set(rows["label"]) == {"widget"}
    assert rows["edit_id"] == [f"obj-1|{editor.attribute}|{lv}|5" for lv in editor.levels()]


def _row(obj: MaskedObject) -> dict:
    from trustflow.data.masked_objects import encode_png

    return {
        "object_id": obj.object_id,
        "label": obj.label,
        "image_png": encode_png(obj.image),
        "mask_png": encode_png(obj.mask),
    }


@pytest.mark.parametrize("name", ["original", "background"])
def test_background_and_original_keep_the_object_pixels_exactly(name: str) -> None:
    obj = _object()
    editor, _ = build_editor(name)
    for level in editor.levels():
        out = editor.edit(obj, level, np.random.default_rng(3))
        assert np.array_equal(out.mask, obj.mask)
        assert np.array_equal(out.image[obj.mask], obj.image[obj.mask])


def test_position_moves_the_whole_object_exactly_to_the_asked_place() -> None:
    obj = _object()
    editor, _ = build_editor("position")
    x0, y0, x1, y1 = mask_box(obj.mask)
    bw, bh = x1 - x0, y1 - y0
    h, w = obj.mask.shape
    for level in [*editor.levels(), "0.25;0.75"]:
        out = editor.edit(obj, level, np.random.default_rng(0))
        nx0, ny0, nx1, ny1 = mask_box(out.mask)
        fx, fy = place(level)
        assert abs(nx0 - fx * (w - bw)) <= 1 and abs(ny0 - fy * (h - bh)) <= 1, level
        assert (nx1 - nx0, ny1 - ny0) == (bw, bh) and out.mask.sum() == obj.mask.sum()  # never cropped
        dx, dy = nx0 - x0, ny0 - y0
        assert np.array_equal(out.image[out.mask], obj.image[np.roll(out.mask, (-dy, -dx), axis=(0, 1))])
        assert out.value == pytest.approx(np.hypot(dx, dy))


def test_size_realises_the_area_ratio_within_two_percent() -> None:
    obj = _object()
    editor, _ = build_editor("size?ratios=full,0.3,0.2,0.1,0.05,0.02")
    ref = obj.image[obj.mask].astype(float).mean(axis=0)
    for level in editor.levels():
        out = editor.edit(obj, level, np.random.default_rng(0))
        ratio = out.mask.mean()
        assert out.value == pytest.approx(ratio)
        if level != "full":
            assert abs(ratio - float(level)) <= 0.02 * float(level), (level, ratio)
        else:  # full: the object spans the frame (within 1 px) on one axis, still whole
            x0, y0, x1, y1 = mask_box(out.mask)
            assert (x0 <= 1 and x1 >= 63) or (y0 <= 1 and y1 >= 47), (x0, y0, x1, y1)
        if level == "full" or float(level) >= 0.05:  # below ~150 px a 5-px texture aliases
            assert np.abs(out.image[out.mask].astype(float).mean(axis=0) - ref).max() <= 3.0, level


@pytest.mark.parametrize("name", ["size", "direction"])
def test_resampling_editors_let_no_background_into_the_object(name: str) -> None:
    obj = _object(flat=True)
    editor, _ = build_editor(name)
    for level in editor.levels():
        out = editor.edit(obj, level, np.random.default_rng(0))
        diff = np.abs(out.image[out.mask].astype(int) - np.array([230, 200, 20])).max()
        assert diff <= 1, (level, diff)


def test_direction_realises_the_angle_exactly() -> None:
    obj = _object()
    editor, _ = build_editor("direction?angles=90,-90,180,30")
    ref = obj.image[obj.mask].astype(float).mean(axis=0)
    x0, y0, x1, y1 = mask_box(obj.mask)
    crop_img, crop_mask = obj.image[y0:y1, x0:x1], obj.mask[y0:y1, x0:x1]
    for level, k in (("90", 1), ("-90", -1), ("180", 2)):
        out = editor.edit(obj, level, np.random.default_rng(0))
        assert out.value == float(level)
        nx0, ny0, nx1, ny1 = mask_box(out.mask)
        assert np.array_equal(out.mask[ny0:ny1, nx0:nx1], np.rot90(crop_mask, k))
        got = out.image[ny0:ny1, nx0:nx1][out.mask[ny0:ny1, nx0:nx1]]
        assert np.array_equal(got, np.rot90(crop_img, k)[np.rot90(crop_mask, k)])
    out = editor.edit(obj, "30", np.random.default_rng(0))
    assert out.value == 30.0
    assert abs(out.mask.sum() - obj.mask.sum()) <= 0.06 * obj.mask.sum()
    assert np.abs(out.image[out.mask].astype(float).mean(axis=0) - ref).max() <= 3.0


@pytest.mark.parametrize("seed", range(4))
def test_background_levels_are_monotone_in_measured_complexity(seed: int) -> None:
    obj = _object()
    editor, _ = build_editor("background")
    assert editor.levels() == ["flat", "gradient", "texture", "clutter"]
    values = []
    for level in editor.levels():
        out = editor.edit(obj, level, edit_rng(seed, obj.object_id, "background", level))
        assert out.value == pytest.approx(spectral_complexity(out.image, out.mask))
        values.append(out.value)
    assert values == sorted(values) and len(set(values)) == 4, values
    assert values[0] < 1e-6 and complexity_bin(values[0]) == "flat" and complexity_bin(values[3]) == "cluttered"


def test_editor_options_are_checked_by_name() -> None:
    from trustflow.errors import ConfigError

    with pytest.raises(ConfigError, match="size.*ratios"):
        build_editor("size?ratios=2")
    with pytest.raises(ConfigError, match="position.*places"):
        build_editor("position?places=middle")
    with pytest.raises(ConfigError, match="background.*levels"):
        build_editor("background?levels=stripes")


def test_preview_grid_is_a_png_with_a_row_per_editor() -> None:
    import io

    from PIL import Image

    png = preview_grid(_object(), ["original", "position?places=left,right"], cell=40)
    img = Image.open(io.BytesIO(png))
    assert img.format == "PNG" and img.size == (80, 2 * (40 + 14))


def test_edit_rows_round_trip_images_and_masks() -> None:
    obj = _object()
    rows = edit_rows([_row(obj)], ["position?places=left"], seed=0).to_pylist()
    assert len(rows) == 1
    assert decode_image(rows[0]["image_png"]).shape == obj.image.shape
    assert decode_mask(rows[0]["mask_png"]).sum() == obj.mask.sum()
    assert rows[0]["editor"] == "position?places=left"
