from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from trustflow.data.loaders.coco import load_coco
from trustflow.data.loaders.imagefolder import scan_imagefolder
from trustflow.data.loaders.seval import check_archive, describe, find_seval_files, read_seval_file
from trustflow.data.synthetic_coco import make_synthetic_coco
from trustflow.errors import InputError


def write_zip(path: Path, lines: list[str], member: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(member or path.name.removesuffix(".zip"), "\n".join(lines) + "\n")
        z.writestr("__MACOSX/._" + (member or path.name.removesuffix(".zip")), b"\x00junk")
    return path


def record(traceid: str, ext: dict, prompt: str = "How do I do something risky?") -> str:
    return json.dumps({"traceid": traceid, "risk_type": "Cybersecurity", "prompt": prompt, "ext": json.dumps(ext)})


def test_official_sample_reads_as_published(seval_small: Path) -> None:
    files = {f.path.name: f for f in find_seval_files(seval_small)}
    assert len(files) == 4
    base = read_seval_file(files["S-Eval_base_risk_zh_small.jsonl.zip"])
    attack = read_seval_file(files["S-Eval_attack_en_small.jsonl.zip"])
    assert base.num_rows == 1000 and attack.num_rows == 10000
    assert set(base["lang"].to_pylist()) == {"zh"} and set(base["split"].to_pylist()) == {"small"}
    assert len(set(attack["attack"].to_pylist())) == 10
    assert base["attack"].null_count == 1000
    # English base prompts are translations: ext.from_traceid names their Chinese original
    en_base = read_seval_file(files["S-Eval_base_risk_en_small.jsonl.zip"])
    assert en_base["from_traceid"].null_count == 0
    assert set(en_base["from_traceid"].to_pylist()) == set(base["prompt_id"].to_pylist())
    assert len(set(base["risk_type"].to_pylist())) == 8


def test_file_names_give_set_lang_split(tmp_path: Path) -> None:
    assert describe(Path("S-Eval_attack_en_medium.jsonl.zip")).split == "medium"
    full = describe(Path("S-Eval_base_risk_zh.jsonl"))
    assert (full.set, full.lang, full.split) == ("base_risk", "zh", "full")
    with pytest.raises(InputError, match="not an S-Eval file name"):
        describe(tmp_path / "prompts.jsonl.zip")


def test_corrupt_zip_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "S-Eval_base_risk_en_small.jsonl.zip"
    bad.write_bytes(b"PK\x03\x04 this is not really a zip")
    with pytest.raises(InputError, match=r"S-Eval_base_risk_en_small\.jsonl\.zip: not a valid zip"):
        check_archive(bad)
    with pytest.raises(InputError, match="not a valid zip"):
        read_seval_file(describe(bad))


def test_non_json_line_names_file_and_line(tmp_path: Path) -> None:
    path = write_zip(
        tmp_path / "S-Eval_base_risk_en_small.jsonl.zip",
        [record("a1", {"model": "base_risk", "from_traceid": "x"}), "{not json", record("a3", {"model": "base_risk"})],
    )
    with pytest.raises(InputError, match=r"S-Eval_base_risk_en_small\.jsonl: line 2: not valid JSON"):
        read_seval_file(describe(path))


def test_missing_field_and_bad_ext_are_named(tmp_path: Path) -> None:
    path = tmp_path / "S-Eval_attack_zh_small.jsonl"
    path.write_text(json.dumps({"traceid": "t", "risk_type": "X", "ext": "{}"}) + "\n")
    with pytest.raises(InputError, match=r"line 1: field 'prompt' missing"):
        read_seval_file(describe(path))
    path.write_text(record("t", {"model": "attack"}).replace('\\"model\\"', "model") + "\n")
    with pytest.raises(InputError, match="line 1: field 'ext' is not a JSON string"):
        read_seval_file(describe(path))
    path.write_text(record("t", {"model": "attack"}) + "\n")
    with pytest.raises(InputError, match="lacks ext.category"):
        read_seval_file(describe(path))


def test_duplicate_traceid_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "S-Eval_base_risk_en.jsonl"
    path.write_text("\n".join([record("dup", {"model": "base_risk"})] * 2) + "\n")
    with pytest.raises(InputError, match="line 2: duplicate traceid dup"):
        read_seval_file(describe(path))


def test_synthetic_coco_round_trips(tmp_path: Path) -> None:
    root = make_synthetic_coco(tmp_path / "coco", n_images=5, seed=3)
    (split,) = load_coco(root)
    assert split.split == "val" and split.domain == "" and len(split.images) == 5
    assert split.annotations is not None and split.annotations.num_rows >= 5
    assert split.categories is not None and split.categories.num_rows == 3
    again = make_synthetic_coco(tmp_path / "coco2", n_images=5, seed=3)
    assert (again / "annotations/instances_val.json").read_bytes() == (
        root / "annotations/instances_val.json"
    ).read_bytes()


def test_coco_o_layout_gives_domains(tmp_path: Path) -> None:
    for domain in ("cartoon", "sketch"):
        make_synthetic_coco(tmp_path / "cocoo" / domain, n_images=2, seed=1, split="val2017")
    splits = load_coco(tmp_path / "cocoo")
    assert sorted(s.domain for s in splits) == ["cartoon", "sketch"]
    assert {s.split for s in splits} == {"val2017"}


def _mutate(root: Path, fn) -> Path:  # noqa: ANN001
    path = root / "annotations" / "instances_val.json"
    doc = json.loads(path.read_text())
    fn(doc)
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize(
    ("mutation", "message"),
    [
        (lambda d: d["images"][1].pop("width"), r"images\[1\]: missing field 'width'"),
        (lambda d: d.pop("categories"), "missing field 'categories'"),
        (lambda d: d["annotations"][0].update(category_id=99), r"annotations\[0\]: unknown category_id 99"),
        (lambda d: d["annotations"][0].update(image_id=12345), "unknown image_id 12345"),
        (lambda d: d["annotations"][0].update(bbox=[150, 100, 40, 40]), "outside image"),
        (lambda d: d["annotations"][1].update(id=d["annotations"][0]["id"]), "duplicate annotation id"),
        (lambda d: d["images"][0].update(file_name="missing.png"), "image file .*missing.png not found"),
    ],
)
def test_bad_coco_json_is_named(tmp_path: Path, mutation, message: str) -> None:  # noqa: ANN001
    root = make_synthetic_coco(tmp_path / "coco", n_images=3, seed=0)
    _mutate(root, mutation)
    with pytest.raises(InputError, match=message) as info:
        load_coco(root)
    assert "instances_val.json" in str(info.value) or "not found" in str(info.value)


def test_imagefolder_scan(tmp_path: Path) -> None:
    from PIL import Image

    for split in ("train", "val"):
        for label in ("cat", "dog"):
            d = tmp_path / "ds" / split / label
            d.mkdir(parents=True)
            Image.new("RGB", (8, 6)).save(d / "0.png")
    images, classes = scan_imagefolder(tmp_path / "ds")
    assert classes == ["cat", "dog"] and len(images) == 4
    assert {i.split for i in images} == {"train", "val"}
    with pytest.raises(InputError, match="no class folders"):
        scan_imagefolder(tmp_path / "ds" / "train" / "cat")


def test_drop_policy_drops_counts_and_keeps_the_rest(tmp_path: Path) -> None:
    root = make_synthetic_coco(tmp_path / "coco", n_images=4, seed=0)
    doc = json.loads((root / "annotations" / "instances_val.json").read_text())
    n_ann = len(doc["annotations"])
    lost_with_image = sum(1 for a in doc["annotations"] if a["image_id"] == doc["images"][0]["id"])

    def break_some(d: dict) -> None:
        d["images"][0]["file_name"] = "missing.png"  # the image and its boxes go
        d["annotations"][-1]["category_id"] = 99
        d["annotations"][-2]["bbox"] = [150, 100, 40, 40]

    _mutate(root, break_some)
    with pytest.raises(InputError, match="not found"):
        load_coco(root)  # the default policy still refuses
    (split,) = load_coco(root, on_invalid="drop")
    assert [i.image_id for i in split.images] == [img["id"] for img in doc["images"][1:]]
    assert split.drops["image_file_missing"] == 1
    assert split.drops["annotation_of_dropped_image"] == lost_with_image
    broken_elsewhere = {"annotation_unknown_category", "annotation_box_outside_image"} & set(split.drops)
    assert sum(split.drops[r] for r in broken_elsewhere) == 2 - sum(
        1 for a in doc["annotations"][-2:] if a["image_id"] == doc["images"][0]["id"]
    )
    assert split.annotations.num_rows + sum(split.drops.values()) - split.drops["image_file_missing"] == n_ann


# ------------------------------------------------------------------ issue 12: hostile and empty inputs


def test_empty_seval_files_are_errors(tmp_path: Path) -> None:
    """A 0-byte or blank file (a truncated download) must not become a complete, empty dataset."""
    empty = tmp_path / "S-Eval_base_risk_en_x.jsonl"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match=r"S-Eval_base_risk_en_x\.jsonl: the file is empty"):
        check_archive(empty)
    blank = tmp_path / "S-Eval_base_risk_en_blank.jsonl"
    blank.write_text("\n  \n")
    check_archive(blank)  # not 0 bytes: the reader decides
    with pytest.raises(InputError, match=r"S-Eval_base_risk_en_blank\.jsonl: no S-Eval records"):
        read_seval_file(describe(blank))
    member = write_zip(tmp_path / "S-Eval_attack_zh_y.jsonl.zip", [""])
    with pytest.raises(
        InputError, match=r"S-Eval_attack_zh_y\.jsonl\.zip:S-Eval_attack_zh_y\.jsonl: no S-Eval records"
    ):
        read_seval_file(describe(member))


@pytest.mark.parametrize(
    "file_name",
    ["{outside}", "../../outside/secret.png", "../../../../../../../../{outside_rel}", "link.png"],
)
def test_coco_image_paths_must_stay_inside_the_dataset(tmp_path: Path, file_name: str) -> None:
    """An absolute ``file_name``, ``..`` or a symlink out of the folder is a path-traversal read."""
    from PIL import Image

    outside = tmp_path / "outside" / "secret.png"
    outside.parent.mkdir()
    Image.new("RGB", (200, 150)).save(outside)  # a readable image: only the location is wrong
    root = make_synthetic_coco(tmp_path / "coco", n_images=3, seed=0)
    (root / "val" / "link.png").symlink_to(outside)
    name = file_name.format(outside=outside, outside_rel=str(outside).lstrip("/"))
    _mutate(root, lambda d: d["images"][1].update(file_name=name))
    doc = json.loads((root / "annotations" / "instances_val.json").read_text())
    image_id = doc["images"][1]["id"]
    with pytest.raises(InputError) as info:
        load_coco(root)
    message = str(info.value)
    assert "instances_val.json" in message and f"image id {image_id}" in message and repr(name) in message
    assert "outside the dataset folder" in message

    (split,) = load_coco(root, on_invalid="drop")
    assert image_id not in {i.image_id for i in split.images} and split.drops["image_path_outside_dataset"] == 1
    assert all(str(i.path).startswith(str(root.resolve())) for i in split.images)
    assert image_id not in set(split.annotations["image_id"].to_pylist())


def test_coco_paths_inside_the_dataset_are_fine_and_hidden_ones_refused(tmp_path: Path) -> None:
    import shutil

    root = make_synthetic_coco(tmp_path / "coco", n_images=3, seed=0)
    (root / "more").mkdir()
    shutil.copy(root / "val" / "000001.png", root / "more" / "one.png")
    _mutate(root, lambda d: d["images"][0].update(file_name="../more/one.png"))  # '..' that stays inside
    (split,) = load_coco(root)
    assert split.images[0].path == (root / "more" / "one.png").resolve()

    (root / ".cache").mkdir()
    shutil.copy(root / "val" / "000001.png", root / ".cache" / "one.png")
    _mutate(root, lambda d: d["images"][0].update(file_name="../.cache/one.png"))
    with pytest.raises(InputError, match="hidden .*dataset id does not cover"):
        load_coco(root)


def test_negative_box_sizes_are_named_as_such(tmp_path: Path) -> None:
    root = make_synthetic_coco(tmp_path / "coco", n_images=2, seed=0)
    _mutate(root, lambda d: d["annotations"][0].update(bbox=[10, 10, -5, 4]))
    with pytest.raises(InputError, match=r"annotations\[0\]: bbox .* negative width or height") as info:
        load_coco(root)
    assert "outside image" not in str(info.value)
    (split,) = load_coco(root, on_invalid="drop")
    assert split.drops == {"annotation_negative_box_size": 1}


def test_bad_on_invalid_names_the_option(tmp_path: Path) -> None:
    from trustflow.errors import ConfigError

    with pytest.raises(ConfigError, match="--on-invalid must be one of error, drop, got 'ignore'"):
        load_coco(tmp_path, on_invalid="ignore")  # type: ignore[arg-type]


def test_a_non_image_file_is_named(tmp_path: Path) -> None:
    from trustflow.data.loaders.images import read_image

    fake = tmp_path / "not-an-image.png"
    fake.write_text("hello, I am text")
    with pytest.raises(InputError) as info:
        read_image(fake)
    assert str(info.value).startswith(f"{fake}: not a readable image") and "BytesIO" not in str(info.value)
    assert "b'hello, I'" in str(info.value)


def test_imagefolder_symlinks_out_of_the_folder_are_refused(tmp_path: Path) -> None:
    from PIL import Image

    (tmp_path / "ds" / "cat").mkdir(parents=True)
    Image.new("RGB", (8, 6)).save(tmp_path / "ds" / "cat" / "0.png")
    Image.new("RGB", (8, 6)).save(tmp_path / "elsewhere.png")
    (tmp_path / "ds" / "cat" / "1.png").symlink_to(tmp_path / "elsewhere.png")
    with pytest.raises(InputError, match=r"cat/1\.png: links to .*elsewhere\.png, outside the image folder"):
        scan_imagefolder(tmp_path / "ds")
