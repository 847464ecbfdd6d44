"""The ingestion flow run through Prefect (ephemeral) with its work on a real local Ray."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.compute as pc
import pytest
from PIL import Image

from trustflow.data.store import ArtifactStore, StageRef
from trustflow.data.synthetic_coco import make_synthetic_coco
from trustflow.errors import InputError
from trustflow.flows.ingest import ingest_flow
from trustflow.infra.prefect_runtime import prefect_runtime
from trustflow.settings import Settings
from trustflow.tasks.ingest import list_datasets

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ray_cluster")]


def run_ingest(settings: Settings, source: Path | str, kind: str, on_invalid: str = "error") -> dict:
    with prefect_runtime(settings):
        return ingest_flow(source=str(source), kind=kind, store_url=settings.effective_store_url, on_invalid=on_invalid)


def part_names(store: ArtifactStore, dataset_id: str, stage: str) -> list[str]:
    return [p.name for p in store.require_manifest(StageRef("ingest", dataset_id, stage)).parts]


def test_seval_sample_ingests_once(local_settings: Settings, seval_small: Path) -> None:
    info = run_ingest(local_settings, seval_small, "seval")
    assert info["tables"] == {"prompts": 22000} and not info["skipped"]
    store = ArtifactStore(settings=local_settings)
    ref = StageRef("ingest", info["dataset_id"], "prompts")
    prompts = store.read_table(ref, columns=["set", "lang", "attack"])
    counts = prompts.group_by(["set", "lang"]).aggregate([([], "count_all")]).to_pylist()
    assert {(c["set"], c["lang"]): c["count_all"] for c in counts} == {
        ("base_risk", "en"): 1000,
        ("base_risk", "zh"): 1000,
        ("attack", "en"): 10000,
        ("attack", "zh"): 10000,
    }
    before = part_names(store, info["dataset_id"], "prompts")

    again = run_ingest(local_settings, seval_small, "seval")
    assert again["skipped"] and again["dataset_id"] == info["dataset_id"] and again["tables"] == info["tables"]
    assert part_names(store, info["dataset_id"], "prompts") == before
    # Prefect results landed in the store, as JSON, not as local pickles
    results = list((Path(store.location.root) / "prefect-results").iterdir())
    assert results and all(json.loads(p.read_text()) is not None for p in results)


def test_coco_ingest_into_seaweedfs_and_resume(s3_settings: Settings, tmp_path: Path) -> None:
    root = make_synthetic_coco(tmp_path / "coco", n_images=30, seed=5)
    info = run_ingest(s3_settings, root, "coco")
    assert info["tables"]["images"] == 30 and info["tables"]["categories"] == 3
    store = ArtifactStore(settings=s3_settings)
    images = store.read_table(StageRef("ingest", info["dataset_id"], "images"))
    first = images.filter(pc.equal(images["image_id"], 1)).to_pylist()[0]
    assert first["image_bytes"] == (root / "val" / "000001.png").read_bytes()
    anns = store.read_table(StageRef("ingest", info["dataset_id"], "annotations"))
    doc = json.loads((root / "annotations" / "instances_val.json").read_text())
    assert anns.num_rows == len(doc["annotations"])
    assert [d.dataset_id for d in list_datasets(store)] == [info["dataset_id"]]


def test_imagefolder_ingest(local_settings: Settings, tmp_path: Path) -> None:
    for split in ("train", "val"):
        for label in ("bird", "cat", "dog"):
            d = tmp_path / "folder" / split / label
            d.mkdir(parents=True)
            for i in range(3):
                Image.new("RGB", (10 + i, 7), color=(i * 40, 0, 0)).save(d / f"{i}.png")
    info = run_ingest(local_settings, tmp_path / "folder", "imagefolder")
    assert info["tables"] == {"images": 18}
    table = ArtifactStore(settings=local_settings).read_table(StageRef("ingest", info["dataset_id"], "images"))
    assert sorted(set(zip(table["label"].to_pylist(), table["label_id"].to_pylist(), strict=True))) == [
        ("bird", 0),
        ("cat", 1),
        ("dog", 2),
    ]


def test_interrupted_ingest_resumes_without_duplicates(local_settings: Settings, tmp_path: Path) -> None:
    """A crash after some image parts: the re-run skips finished chunks and completes exactly."""
    from trustflow.data.sources import fingerprint
    from trustflow.tasks.ingest import dataset_id_for
    from trustflow.tasks.ingest.kinds import coco as ingest_coco

    root = make_synthetic_coco(tmp_path / "coco", n_images=40, seed=2)
    store = ArtifactStore(settings=local_settings)
    dataset_id = dataset_id_for("coco", fingerprint(root))
    old = ingest_coco.IMAGES_PER_PART
    ingest_coco.IMAGES_PER_PART = 10
    try:
        # simulate the crash: a first chunk's part is on storage, nothing committed
        from trustflow.data.loaders.coco import load_coco

        (split,) = load_coco(root)
        writer = store.writer(StageRef("ingest", dataset_id, "images"), ingest_coco.COCO_IMAGES, ingest_coco.IMAGE_KEYS)
        writer.write_part(ingest_coco.build_image_rows(("", "val", split.images[:10])), "default-val-000000")
        assert store.manifest(StageRef("ingest", dataset_id, "images")) is None
        info = run_ingest(local_settings, root, "coco")
    finally:
        ingest_coco.IMAGES_PER_PART = old
    assert info["dataset_id"] == dataset_id and info["tables"]["images"] == 40
    ids = store.read_table(StageRef("ingest", dataset_id, "images"), columns=["image_id"])["image_id"].to_pylist()
    assert sorted(ids) == list(range(1, 41))
    assert len(part_names(store, dataset_id, "images")) == 4


def test_bad_inputs_fail_clearly_and_keep_existing_data(
    local_settings: Settings, seval_small: Path, tmp_path: Path
) -> None:
    good_src = tmp_path / "good"
    good_src.mkdir()
    shutil.copy(seval_small / "S-Eval_base_risk_en_small.jsonl.zip", good_src)
    good = run_ingest(local_settings, good_src, "seval")
    store = ArtifactStore(settings=local_settings)
    ref = StageRef("ingest", good["dataset_id"], "prompts")
    before = store.read_table(ref)

    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    data = (seval_small / "S-Eval_base_risk_zh_small.jsonl.zip").read_bytes()
    (corrupt / "S-Eval_base_risk_zh_small.jsonl.zip").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="S-Eval_base_risk_zh_small.jsonl.zip: not a valid zip"):
        run_ingest(local_settings, corrupt, "seval")

    badline = tmp_path / "badline"
    badline.mkdir()
    (badline / "S-Eval_base_risk_en_tiny.jsonl").write_text(
        '{"traceid": "a", "risk_type": "X", "prompt": "p", "ext": "{}"}\nnot json\n'
    )
    with pytest.raises(InputError, match="S-Eval_base_risk_en_tiny.jsonl: line 2: not valid JSON"):
        run_ingest(local_settings, badline, "seval")

    coco = make_synthetic_coco(tmp_path / "coco", n_images=3)
    doc = json.loads((coco / "annotations" / "instances_val.json").read_text())
    del doc["annotations"][0]["bbox"]
    (coco / "annotations" / "instances_val.json").write_text(json.dumps(doc))
    with pytest.raises(InputError, match=r"instances_val.json: annotations\[0\]: missing field 'bbox'"):
        run_ingest(local_settings, coco, "coco")

    assert store.read_table(ref).equals(before)
    assert [d.dataset_id for d in list_datasets(store)] == [good["dataset_id"]]


def test_an_ingest_that_finds_no_rows_is_an_error_and_marks_nothing_complete(
    local_settings: Settings, tmp_path: Path
) -> None:
    """Issue 12: a 0-byte S-Eval file used to ingest as a complete dataset with 0 prompts."""
    store = ArtifactStore(settings=local_settings)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "S-Eval_base_risk_en_x.jsonl").write_bytes(b"")
    with pytest.raises(InputError, match=r"S-Eval_base_risk_en_x\.jsonl: the file is empty"):
        run_ingest(local_settings, empty, "seval")

    blank = tmp_path / "blank"  # not 0 bytes: found by the reader, in a Ray worker
    blank.mkdir()
    (blank / "S-Eval_base_risk_en_x.jsonl").write_text("\n\n")
    with pytest.raises(InputError, match=r"S-Eval_base_risk_en_x\.jsonl: no S-Eval records"):
        run_ingest(local_settings, blank, "seval")

    coco = make_synthetic_coco(tmp_path / "coco", n_images=2)
    ann = coco / "annotations" / "instances_val.json"
    doc = json.loads(ann.read_text())
    doc["images"], doc["annotations"] = [], []
    ann.write_text(json.dumps(doc))
    with pytest.raises(InputError, match=r"no images in .*instances_val\.json"):
        run_ingest(local_settings, coco, "coco")
    assert list_datasets(store) == [] and store.list_stages(flow="ingest") == []


def test_coco_file_names_cannot_leave_the_dataset(local_settings: Settings, tmp_path: Path) -> None:
    """Issue 12: an absolute ``file_name`` used to be read and stored (a path-traversal read)."""
    coco = make_synthetic_coco(tmp_path / "coco", n_images=3)
    ann = coco / "annotations" / "instances_val.json"
    doc = json.loads(ann.read_text())
    outside = tmp_path / "private.png"  # a valid image of the announced size: only its place is wrong
    Image.new("RGB", (doc["images"][0]["width"], doc["images"][0]["height"]), (1, 2, 3)).save(outside)
    doc["images"][0]["file_name"] = str(outside)
    ann.write_text(json.dumps(doc))
    image_id = doc["images"][0]["id"]
    with pytest.raises(
        InputError, match=rf"instances_val\.json: images\[0\]: image id {image_id}: file_name .*private"
    ):
        run_ingest(local_settings, coco, "coco")
    store = ArtifactStore(settings=local_settings)
    assert store.list_stages(flow="ingest") == []

    info = run_ingest(local_settings, coco, "coco", on_invalid="drop")
    assert info["tables"]["images"] == 2 and info["dropped"] >= 1
    assert info["drops"]["default/val"]["image_path_outside_dataset"] == 1
    images = store.read_table(StageRef("ingest", info["dataset_id"], "images"))
    assert outside.read_bytes() not in images["image_bytes"].to_pylist()
    again = run_ingest(local_settings, coco, "coco", on_invalid="drop")  # the no-op re-run reports them too
    assert again["skipped"] and again["drops"] == info["drops"]
    with pytest.raises(InputError, match="outside the dataset folder"):  # strict: not the lenient dataset
        run_ingest(local_settings, coco, "coco")
