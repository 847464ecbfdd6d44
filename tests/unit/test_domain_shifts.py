"""COCO-O style domain shifts: the transforms, domain names, shifted COCO sets and the preview grid.

One OpenCV thread: the CI machine has two shared cores.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from trustflow.data.loaders.coco import load_coco
from trustflow.data.synthetic_coco import make_synthetic_coco
from trustflow.errors import ConfigError, InputError
from trustflow.tasks.detection.shifts import COCO_O_DOMAINS, DOMAIN_SHIFTS
from trustflow.tasks.detection.shifts.apply import (
    domain_dirname,
    expand_domains,
    make_shifted_set,
    parse_domain,
    shift_grid_png,
    shift_image,
)
from trustflow.tasks.detection.shifts.weather import fog, rain, snow
from trustflow.tasks.robustness.corruptions import ALL_CORRUPTIONS, corrupt

cv2.setNumThreads(1)

MIN_CHANGE = 12.0  # mean |shifted - original| over uint8 pixels: a visible change of style


def _scene(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A small photo-like test image: smooth gradients, a textured background and solid shapes."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([90 + 80 * xx / max(1, w - 1), 120 + 60 * yy / max(1, h - 1), 150 - 50 * xx / max(1, w - 1)], -1)
    img = np.clip(base + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
    cv2.circle(img, (w // 3, h // 2), max(2, min(h, w) // 4), (200, 60, 40), -1)
    cv2.rectangle(img, (w // 2, h // 4), (w - max(2, w // 8), h - max(2, h // 5)), (30, 40, 60), -1)
    cv2.line(img, (0, h - 3), (w - 1, h // 3), (250, 240, 220), max(1, min(h, w) // 30))
    return img


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    return _scene(120, 160)


# --------------------------------------------------------------------------- the transforms


def test_registry_holds_the_six_coco_o_domains() -> None:
    assert COCO_O_DOMAINS == ("sketch", "cartoon", "painting", "weather", "handmake", "tattoo")
    assert sorted(COCO_O_DOMAINS) == DOMAIN_SHIFTS.names()


@pytest.mark.parametrize("domain", COCO_O_DOMAINS)
def test_shift_keeps_shape_and_changes_style(domain: str, scene: np.ndarray) -> None:
    out = shift_image(scene, domain, seed=0, image_id=7)
    assert out.shape == scene.shape and out.dtype == np.uint8
    change = np.abs(out.astype(np.float32) - scene.astype(np.float32)).mean()
    assert change > MIN_CHANGE, f"{domain} changed the image by only {change:.1f} grey levels on average"
    assert out.std() > 5, f"{domain} flattened the image to one colour"


@pytest.mark.parametrize("domain", COCO_O_DOMAINS)
def test_shift_is_deterministic_and_seeded_per_image(domain: str, scene: np.ndarray) -> None:
    first = shift_image(scene, domain, seed=3, image_id=11)
    np.testing.assert_array_equal(first, shift_image(scene, domain, seed=3, image_id=11))
    assert not np.array_equal(first, shift_image(scene, domain, seed=4, image_id=11)), "seed is ignored"
    assert not np.array_equal(first, shift_image(scene, domain, seed=3, image_id=12)), "image id is ignored"


@pytest.mark.parametrize("shape", [(30, 40, 3), (40, 30, 3), (17, 61, 3), (1, 1, 3), (3, 2, 3)])
@pytest.mark.parametrize("domain", COCO_O_DOMAINS)
def test_shift_handles_small_and_non_square_images(domain: str, shape: tuple[int, int, int]) -> None:
    img = _scene(shape[0], shape[1], seed=1)
    out = shift_image(img, domain, seed=0, image_id=0)
    assert out.shape == img.shape and out.dtype == np.uint8


@pytest.mark.parametrize("condition", [fog, rain, snow])
def test_each_weather_condition_changes_the_image(condition, scene: np.ndarray) -> None:  # noqa: ANN001
    out = condition(scene, np.random.default_rng(0))
    assert out.shape == scene.shape and out.dtype == np.uint8
    assert np.abs(out.astype(np.float32) - scene).mean() > 8
    np.testing.assert_array_equal(out, condition(scene, np.random.default_rng(0)))


def test_weather_draws_all_three_conditions(scene: np.ndarray) -> None:
    # fog and snow brighten the scene, rain darkens it: over 30 image ids both must occur
    shifts = [float(shift_image(scene, "weather", 0, i).mean()) - float(scene.mean()) for i in range(30)]
    assert min(shifts) < 0 < max(shifts)


def test_corruption_domain_matches_coco_c(scene: np.ndarray) -> None:
    out = shift_image(scene, "corruption:gaussian_noise:3", seed=5, image_id=9)
    x = scene.astype(np.float32).transpose(2, 0, 1)[None] / 255.0
    expected = corrupt(x, "gaussian_noise", 3, seed=5, start_index=9)[0].transpose(1, 2, 0)
    assert out.shape == scene.shape and out.dtype == np.uint8
    np.testing.assert_allclose(out / 255.0, expected, atol=0.5 / 255 + 1e-6)


def test_original_is_the_image_itself(scene: np.ndarray) -> None:
    np.testing.assert_array_equal(shift_image(scene, "original", 0, 0), scene)


def test_shift_image_rejects_non_rgb_uint8(scene: np.ndarray) -> None:
    with pytest.raises(ValueError, match="uint8"):
        shift_image(scene.astype(np.float32), "sketch", 0, 0)
    with pytest.raises(ValueError, match="H×W×3"):
        shift_image(scene[..., 0], "sketch", 0, 0)


# --------------------------------------------------------------------------- domain names


def test_expand_domains() -> None:
    assert expand_domains("all") == list(COCO_O_DOMAINS)
    coco_c = expand_domains("coco-c")
    assert len(coco_c) == 75 and len(set(coco_c)) == 75
    assert coco_c[:2] == ["corruption:gaussian_noise:1", "corruption:gaussian_noise:2"]
    assert expand_domains("coco-c:3") == [f"corruption:{n}:3" for n in ALL_CORRUPTIONS]
    assert expand_domains("sketch, weather") == ["sketch", "weather"]
    assert expand_domains(["all", "corruption:fog:2", "sketch"]) == [*COCO_O_DOMAINS, "corruption:fog:2"]
    assert expand_domains("tattoo,coco-c:1,tattoo")[:2] == ["tattoo", "corruption:gaussian_noise:1"]


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("bogus", "'bogus'"),
        ("sketch,oil", "'oil'"),
        ("corruption:nope:3", "unknown corruption 'nope'"),
        ("corruption:fog:9", "severity"),
        ("corruption:fog:x", "severity"),
        ("corruption:fog", "corruption:<name>:<severity>"),
        ("coco-c:0", "severity"),
        ("corruption:fog:03", "severity"),
        (" , ", "no domains"),
    ],
)
def test_expand_domains_rejects_unknown_names(spec: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(")):
        expand_domains(spec)


def test_parse_domain_and_folder_names() -> None:
    assert parse_domain("cartoon") == ("cartoon", 0)
    assert parse_domain("corruption:motion_blur:4") == ("motion_blur", 4)
    assert domain_dirname("corruption:motion_blur:4") == "corruption-motion_blur-4"
    with pytest.raises(ConfigError, match="'corruption:motion_blur:6'"):
        shift_image(np.zeros((4, 4, 3), np.uint8), "corruption:motion_blur:6", 0, 0)


# --------------------------------------------------------------------------- shifted sets


def _tree_mtimes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synthetic_coco(tmp_path_factory.mktemp("src"), n_images=4)


def test_make_shifted_set_writes_a_coco_o_tree(source: Path, tmp_path: Path) -> None:
    domains = [*COCO_O_DOMAINS, "corruption:contrast:2"]
    out = make_shifted_set(source, tmp_path / "shifted", domains, seed=1)
    assert out == tmp_path / "shifted"
    assert not (out / ".partial").exists()

    (src,) = load_coco(source)
    splits = {s.domain: s for s in load_coco(out)}
    by_dir = {domain_dirname(d): d for d in ["original", *domains]}
    assert sorted(splits) == sorted(by_dir) and "corruption-contrast-2" in by_dir
    src_pixels = {im.image_id: np.asarray(Image.open(im.path).convert("RGB")) for im in src.images}
    src_boxes = src.annotations.select(["ann_id", "image_id", "category_id", "bbox", "area"]).to_pylist()
    for domain, split in splits.items():
        assert split.split == src.split
        assert split.annotations.num_rows == src.annotations.num_rows
        assert split.annotations.select(["ann_id", "image_id", "category_id", "bbox", "area"]).to_pylist() == src_boxes
        assert split.categories.equals(src.categories)
        sizes = {im.image_id: (im.width, im.height) for im in split.images}
        for ann in split.annotations.to_pylist():
            x, y, w, h = ann["bbox"]
            width, height = sizes[ann["image_id"]]
            assert x >= 0 and y >= 0 and x + w <= width and y + h <= height
        for im in split.images:
            with Image.open(im.path) as pil:
                assert pil.size == (im.width, im.height) and pil.format == "PNG"
                pixels = np.asarray(pil.convert("RGB"))
            if domain == "original":
                np.testing.assert_array_equal(pixels, src_pixels[im.image_id])
            else:
                expected = shift_image(src_pixels[im.image_id], by_dir[domain], 1, im.image_id)
                np.testing.assert_array_equal(pixels, expected)


def test_make_shifted_set_resumes_without_rewriting(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "shifted"
    (out / ".partial" / "sketch").mkdir(parents=True)
    (out / ".partial" / "sketch" / "junk.txt").write_text("left by a killed run")
    make_shifted_set(source, out, "sketch", seed=0)
    assert not (out / ".partial").exists()
    before = _tree_mtimes(out)
    assert "sketch/annotations/instances_val.json" in before and "original/val/000001.png" in before

    make_shifted_set(source, out, "sketch", seed=0)
    assert _tree_mtimes(out) == before

    make_shifted_set(source, out, "sketch,tattoo", seed=0)  # only the new domain is written
    after = _tree_mtimes(out)
    assert {k: v for k, v in after.items() if not k.startswith("tattoo/")} == before
    assert sorted(s.domain for s in load_coco(out)) == ["original", "sketch", "tattoo"]

    with pytest.raises(ConfigError, match=r"sketch was made with domain 'sketch', seed 0, not 'sketch', seed 5"):
        make_shifted_set(source, out, "sketch", seed=5)
    make_shifted_set(source, out, "tattoo", seed=0, include_original=False)  # nothing to do, no error
    make_shifted_set(source, out, "original", seed=7)  # the original copy does not depend on the seed
    assert _tree_mtimes(out) == after


def test_make_shifted_set_workers_give_identical_files(source: Path, tmp_path: Path) -> None:
    one = make_shifted_set(source, tmp_path / "one", "cartoon", include_original=False)
    two = make_shifted_set(source, tmp_path / "two", "cartoon", workers=2, include_original=False)
    assert sorted(p.name for p in one.iterdir()) == ["cartoon"]
    files = sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(two) for p in two.rglob("*") if p.is_file())
    for rel in files:
        assert (one / rel).read_bytes() == (two / rel).read_bytes(), rel


def test_make_shifted_set_rejects_bad_inputs(source: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'nope'"):
        make_shifted_set(source, tmp_path / "a", "sketch,nope")
    with pytest.raises(ConfigError, match="workers"):
        make_shifted_set(source, tmp_path / "a", "sketch", workers=0)
    with pytest.raises(ConfigError, match="source set itself"):
        make_shifted_set(source, source, "sketch")

    # the JSON claims a larger image than the file holds: boxes would not match the pixels
    bad = make_synthetic_coco(tmp_path / "bad", n_images=2)
    doc_path = bad / "annotations" / "instances_val.json"
    doc = json.loads(doc_path.read_text())
    doc["images"][1]["width"] += 10
    doc_path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match=r"instances_val\.json: image 2: fields 'width'/'height'"):
        make_shifted_set(bad, tmp_path / "b", "sketch", include_original=False)
    assert not (tmp_path / "b" / "sketch").exists()  # nothing half-written in the tree

    # a COCO-O tree is not a source
    tree = make_shifted_set(source, tmp_path / "tree", "weather")
    with pytest.raises(InputError, match="already a COCO-O tree"):
        make_shifted_set(tree, tmp_path / "c", "sketch")


def test_make_shifted_set_keeps_jpeg_sources_as_jpeg(tmp_path: Path) -> None:
    src = make_synthetic_coco(tmp_path / "src", n_images=2)
    doc_path = src / "annotations" / "instances_val.json"
    doc = json.loads(doc_path.read_text())
    for entry in doc["images"]:
        png = src / "val" / entry["file_name"]
        entry["file_name"] = "sub/" + png.with_suffix(".jpg").name
        (src / "val" / "sub").mkdir(exist_ok=True)
        Image.open(png).convert("RGB").save(src / "val" / entry["file_name"], quality=95)
        os.remove(png)
    doc_path.write_text(json.dumps(doc))
    out = make_shifted_set(src, tmp_path / "out", "painting", include_original=False)
    for entry in doc["images"]:
        with Image.open(out / "painting" / "val" / entry["file_name"]) as pil:
            assert pil.format == "JPEG" and pil.size == (entry["width"], entry["height"])


# --------------------------------------------------------------------------- preview grid


def test_shift_grid_png(scene: np.ndarray, tmp_path: Path) -> None:
    path = shift_grid_png(scene, ["sketch", "corruption:fog:2"], tmp_path / "deep" / "grid.png", seed=2)
    assert path == tmp_path / "deep" / "grid.png"
    with Image.open(path) as pil:
        assert pil.format == "PNG" and pil.width > 300 and pil.height > 100
