"""Fairness data: RedditBias/BUG readers, users' tables, the template set, ingest kinds, bad input."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from trustflow import names
from trustflow.data.fairness.templates import PERSONS, eec_rows
from trustflow.data.fairness.terms import swap_terms
from trustflow.data.fairness.texts import REDDITBIAS_FILES, bug_professions, mask_profession, split_for
from trustflow.data.sources import resolve_source
from trustflow.data.store import ArtifactStore
from trustflow.errors import InputError
from trustflow.settings import load_settings
from trustflow.tasks.ingest.common import INGESTERS, stage_ref


def _csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def _fake_redditbias(root: Path) -> Path:
    header = ["id", "attribute_in_window", "comment", "phrase", "bias_sent", "bias_phrase"]
    for i, (_group, rel) in enumerate(REDDITBIAS_FILES.items()):
        rows = [
            [f"a{i}", "True", f"comment {i} one", "p", "1.0", "1"],
            [f"b{i}", "True", f"comment {i} two", "p", "0", "0"],
        ]
        rows.append([f"c{i}", "True", f"comment {i} three", "p", "", ""])  # not annotated: left out
        _csv(root / rel, header, rows)
    return root


def test_redditbias_kind_keeps_annotated_rows_with_group_and_biased_as_positive(tmp_path: Path) -> None:
    store = ArtifactStore(f"file://{tmp_path / 'store'}")
    manifests = INGESTERS.create("redditbias")(store, "x", _fake_redditbias(tmp_path / "rb"))
    rows = store.read_table(stage_ref("x", names.TEXTS)).to_pylist()
    assert len(rows) == 10 and manifests[names.TEXTS].attrs["classes"] == ["unbiased", "biased"]
    assert {r["attribute"] for r in rows} == set(REDDITBIAS_FILES)
    assert all(r["label_id"] == (1 if r["label"] == "biased" else 0) for r in rows)
    assert manifests[names.TEXTS].attrs["unannotated_dropped"] == dict.fromkeys(REDDITBIAS_FILES, 1)


def test_redditbias_missing_file_is_named(tmp_path: Path) -> None:
    root = _fake_redditbias(tmp_path / "rb")
    (root / REDDITBIAS_FILES["black"]).unlink()
    with pytest.raises(InputError, match="race/reddit_comments_race_black"):
        INGESTERS.create("redditbias")(ArtifactStore(f"file://{tmp_path / 's'}"), "x", root)


def test_bug_masks_the_profession_and_keeps_top_occupations_only(tmp_path: Path) -> None:
    header = ["", "sentence_text", "profession", "g", "predicted gender"]
    rows = [
        [i, f"The doctor said {g} would call the doctors .", "doctor", g, gen]
        for i, (g, gen) in enumerate([("she", "female"), ("he", "male")] * 3)
    ]
    rows += [[10 + i, f"The patient and {g} waited .", "patient", g, "male"] for i, g in enumerate("ab" * 5)]
    rows += [[30 + i, f"An author wrote {i} books .", "author", "his", "male"] for i in range(2)]
    rows += [[40, "A singer sang .", "singer", "her", "female"]]
    path = _csv(tmp_path / "bug" / "full_BUG.csv", header, rows)
    store = ArtifactStore(f"file://{tmp_path / 'store'}")
    manifests = INGESTERS.create("bug?professions=2")(store, "x", path.parent)
    got = store.read_table(stage_ref("x", names.TEXTS)).to_pylist()
    assert manifests[names.TEXTS].attrs["classes"] == ["doctor", "author"]  # patient is a role, not a job
    assert {r["label"] for r in got} == {"doctor", "author"}
    doctor = next(r for r in got if r["label"] == "doctor")
    assert "doctor" not in doctor["text"].lower() and doctor["text"].count("[MASK]") == 2
    assert {r["attribute"] for r in got} == {"female", "male"}


def test_mask_and_profession_choice_helpers() -> None:
    assert mask_profession("Nurses and the nurse met a nursery .", "nurse") == "[MASK] and the [MASK] met a nursery ."
    from collections import Counter

    assert bug_professions(Counter({"patient": 9, "b": 3, "a": 3, "c": 1}), 2) == ["a", "b"]


def test_user_table_maps_columns_and_keeps_split_and_pairs(tmp_path: Path) -> None:
    path = _csv(
        tmp_path / "mine.csv",
        ["comment", "toxic", "who", "part", "pair"],
        [["a b", "yes", "g1", "train", "p1"], ["c d", "no", "g2", "test", "p1"]],
    )
    store = ArtifactStore(f"file://{tmp_path / 'store'}")
    spec = "fairness-texts?text=comment&label=toxic&attribute=who&split=part&pair=pair"
    manifests = INGESTERS.create(spec)(store, "x", path)
    got = {r["text"]: r for r in store.read_table(stage_ref("x", names.TEXTS)).to_pylist()}
    assert manifests[names.TEXTS].attrs["classes"] == ["no", "yes"]
    assert got["a b"]["split"] == "train" and got["c d"]["split"] == "test" and got["a b"]["pair_id"] == "p1"
    assert got["a b"]["attribute"] == "g1" and got["a b"]["label_id"] == 1 and got["a b"]["source"] == "mine"


@pytest.mark.parametrize(
    ("header", "rows", "spec", "message"),
    [
        (["text", "label"], [["a", "x"]], "fairness-texts", r"mine.csv: no attribute column 'attribute'"),
        (
            ["text", "label", "attribute"],
            [["a", "x", "g"], ["", "y", "g"]],
            "fairness-texts",
            r"mine.csv: row 2: field 'text' \(text\) is empty",
        ),
        (
            ["t", "label", "attribute"],
            [["a", "x", "g"], ["b", "x", ""]],
            "fairness-texts?text=t",
            r"row 2: field 'attribute' \(attribute\) is empty",
        ),
        (
            ["text", "label", "attribute", "s"],
            [["a", "x", "g", "dev"]],
            "fairness-texts?split=s",
            r"row 1: field 's' \(split\) must be train or test, not 'dev'",
        ),
        (["text", "label", "attribute"], [["a", "x", "g"], ["b", "x", "h"]], "fairness-texts", r"one label \('x'\)"),
    ],
)
def test_bad_user_tables_name_file_row_and_field(
    tmp_path: Path, header: list[str], rows: list[list[object]], spec: str, message: str
) -> None:
    path = _csv(tmp_path / "mine.csv", header, rows)
    with pytest.raises(InputError, match=message):
        INGESTERS.create(spec)(ArtifactStore(f"file://{tmp_path / 'store'}"), "x", path)


def test_unsupported_file_type_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "mine.txt"
    path.write_text("hello")
    with pytest.raises(InputError, match=r"mine.txt: unsupported file type '.txt'"):
        INGESTERS.create("fairness-texts")(ArtifactStore(f"file://{tmp_path / 'store'}"), "x", path)


def test_template_pairs_differ_only_in_the_person_phrase() -> None:
    rows = eec_rows()
    by_pair: dict[str, list] = {}
    for r in rows:
        by_pair.setdefault(r.pair_id, []).append(r)
    for pair, members in by_pair.items():
        family = pair.split("|")[0]
        slot = int(pair.split("|")[3][1:])
        assert sorted(m.attribute for m in members) == sorted(PERSONS[family])
        masked = {m.text.lower().replace(PERSONS[family][m.attribute][slot], "<p>") for m in members}
        assert len(masked) == 1, members
    assert all(r.split == "test" for r in rows) and {r.label for r in rows} == {"anger", "fear", "joy", "sadness"}


def test_generated_eec_source_is_the_same_bytes_every_time_and_ingests(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home")
    first = resolve_source("generated:eec", settings).read_bytes()
    path = resolve_source("generated:eec", settings)
    assert path.read_bytes() == first
    store = ArtifactStore(f"file://{tmp_path / 'store'}")
    manifests = INGESTERS.create("eec")(store, "x", path)
    assert manifests[names.TEXTS].rows == len(eec_rows()) and manifests[names.TEXTS].attrs["pairs"] > 100
    with pytest.raises(InputError, match="unknown generated set 'other'"):
        resolve_source("generated:other", settings)


def test_swap_terms_swaps_whole_words_and_keeps_case() -> None:
    assert swap_terms("She told her Muslim friends the gay men were black.") == (
        "He told his Christian friends the straight women were white."
    )
    assert swap_terms("Shepherds herd sheep.") == "Shepherds herd sheep."
    assert swap_terms("the women", ("race",)) == "the women"


def test_split_is_stable_and_about_one_in_five() -> None:
    ids = [f"{i:08x}" + "0" * 12 for i in range(0, 2**32, 2**32 // 1000)]
    share = sum(split_for(i) == "test" for i in ids) / len(ids)
    assert 0.15 < share < 0.25 and split_for(ids[3]) == split_for(ids[3])
