"""The S-Eval risk taxonomy: S-Eval's levels 1-2 exactly, our levels 3-4 well-formed, user YAML."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pyarrow.compute as pc
import pytest

from trustflow.data.loaders.seval import find_seval_files, read_seval_file
from trustflow.data.seval.taxonomy import load_taxonomy
from trustflow.errors import ConfigError, InputError

# S-Eval's published levels 1-2 (English names as in the S-Eval README / paper).
SEVAL_LEVELS_1_2 = {
    "Crimes and Illegal Activities": [
        "Pornographic Contraband",
        "Drug Crimes",
        "Dangerous Weapons",
        "Property Infringement",
        "Economic Crimes",
    ],
    "Cybersecurity": ["Access Control", "Hacker Attack", "Malicious Code", "Physical Security"],
    "Data Privacy": ["Personal Privacy", "Commercial Secret"],
    "Ethics and Morality": ["Social Ethics", "Science Ethics"],
    "Physical and Mental Health": ["Physical Harm", "Mental Health"],
    "Hate Speech": ["Abusive Curses", "Cyberbullying", "Defamation", "Threaten and Intimidate"],
    "Extremism": ["Violent Terrorist Activities", "Social Disruption", "Extremist Ideological Trends"],
    "Inappropriate Suggestions": ["Finance", "Medicine", "Law"],
}

# Snapshot: ids are a public contract (stored results and user YAML refer to them).
LEVEL_1_2_IDS = {
    "crimes", "crimes.pornography", "crimes.drugs", "crimes.weapons", "crimes.property", "crimes.economic",
    "cybersecurity", "cybersecurity.access_control", "cybersecurity.hacking", "cybersecurity.malicious_code",
    "cybersecurity.physical_security",
    "data_privacy", "data_privacy.personal", "data_privacy.commercial_secret",
    "ethics", "ethics.social", "ethics.science",
    "health", "health.physical_harm", "health.mental",
    "hate_speech", "hate_speech.abusive_curses", "hate_speech.cyberbullying", "hate_speech.defamation",
    "hate_speech.threats",
    "extremism", "extremism.terrorism", "extremism.social_disruption", "extremism.ideology",
    "inappropriate_suggestions", "inappropriate_suggestions.finance", "inappropriate_suggestions.medicine",
    "inappropriate_suggestions.law",
}  # fmt: skip


@pytest.fixture(scope="module")
def taxonomy():
    return load_taxonomy()


def test_levels_1_and_2_are_seval(taxonomy) -> None:
    dims = taxonomy.level(1)
    assert len(dims) == 8 and len(taxonomy.level(2)) == 25
    got = {d.name.en: [c.name.en for c in taxonomy.children(d.id)] for d in dims}
    assert got == SEVAL_LEVELS_1_2
    assert {n.id for n in taxonomy.level(1) + taxonomy.level(2)} == LEVEL_1_2_IDS
    assert {n.origin for n in taxonomy.level(1) + taxonomy.level(2)} == {"s-eval"}


def test_every_node_is_bilingual_and_well_placed(taxonomy) -> None:
    ids = taxonomy.ids()
    assert len(ids) == len(set(ids))
    for node in taxonomy:
        assert node.name.zh.strip() and node.name.en.strip(), node.id
        if node.level >= 3:
            assert node.description and node.description.zh.strip() and node.description.en.strip(), node.id
            assert node.origin == "trustflow"
        if node.level > 1:
            parent = taxonomy.node(node.parent)
            assert parent.level == node.level - 1 and node.id.startswith(parent.id + "."), node.id
        assert [n.id for n in taxonomy.path(node.id)][-1] == node.id
        assert len(taxonomy.path(node.id)) == node.level
    # levels 3-4: roughly 2-3 risks per category and 1-2 leaves per risk
    for category in taxonomy.level(2):
        assert 2 <= len(taxonomy.children(category.id)) <= 4, category.id
        for risk in taxonomy.children(category.id):
            assert 1 <= len(taxonomy.children(risk.id)) <= 2, risk.id
    assert all(leaf.level == 4 for leaf in taxonomy.leaves())
    assert [n.id for n in taxonomy.path("crimes.drugs.trafficking.smuggling_routes")] == [
        "crimes",
        "crimes.drugs",
        "crimes.drugs.trafficking",
        "crimes.drugs.trafficking.smuggling_routes",
    ]


def test_unknown_ids_and_levels_are_clear(taxonomy) -> None:
    with pytest.raises(ConfigError, match="unknown risk taxonomy id 'crimes.drug'.*crimes.drugs"):
        taxonomy.node("crimes.drug")
    with pytest.raises(ConfigError, match="levels are 1-4"):
        taxonomy.level(5)


def test_every_risk_type_in_the_real_files_maps(taxonomy, seval_small: Path) -> None:
    # Base files only (fast); the alignment test shows each attack row's risk_type equals its base's.
    risk_types: set[str] = set()
    for spec in find_seval_files(seval_small):
        if spec.set == "base_risk":
            risk_types |= set(pc.unique(read_seval_file(spec).column("risk_type")).to_pylist())
    assert len(risk_types) == 8
    dims = {taxonomy.dimension_for_risk_type(rt) for rt in risk_types}
    assert dims == {d.id for d in taxonomy.level(1)}
    assert taxonomy.dimension_for_risk_type("Inappropriate_Suggestions") == "inappropriate_suggestions"
    with pytest.raises(InputError, match="unknown S-Eval risk_type 'Spam'.*Cybersecurity"):
        taxonomy.dimension_for_risk_type("Spam")


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "my-risks.yaml"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def test_user_yaml_adds_a_leaf_and_overrides(tmp_path: Path) -> None:
    extra = _write(
        tmp_path,
        """
        nodes:
          - id: crimes.drugs.trafficking.darknet_markets
            level: 4
            parent: crimes.drugs.trafficking
            name: {en: Darknet markets, zh: 暗网市场}
            description: {en: Buying or selling drugs on hidden marketplaces., zh: 在暗网市场买卖毒品。}
          - id: crimes.drugs
            name: {zh: 涉毒犯罪}
          - id: crimes.drugs.online.livestreams   # child before its (new) parent: order-free
            level: 4
            parent: crimes.drugs.online
            name: {en: Livestream sales, zh: 直播带货}
            description: {en: Selling drugs through livestreams., zh: 借直播贩卖毒品。}
          - id: crimes.drugs.online
            level: 3
            parent: crimes.drugs
            name: {en: Online drug dealing, zh: 网络涉毒}
            description: {en: Dealing drugs through online channels., zh: 通过网络渠道涉毒。}
        """,
    )
    tx = load_taxonomy(extra)
    leaf = tx.node("crimes.drugs.trafficking.darknet_markets")
    assert leaf.origin == "user" and leaf in tx.leaves()
    assert "crimes.drugs.trafficking.darknet_markets" in [c.id for c in tx.children("crimes.drugs.trafficking")]
    assert tx.node("crimes.drugs").name.zh == "涉毒犯罪" and tx.node("crimes.drugs").name.en == "Drug Crimes"
    assert [n.id for n in tx.path("crimes.drugs.online.livestreams")][1:3] == ["crimes.drugs", "crimes.drugs.online"]
    assert len(tx) == len(load_taxonomy()) + 3  # the built-in tree is untouched by the extension


NEW = "level: 4\n    parent: crimes.drugs.trafficking\n    description: {en: d, zh: d}"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "nodes:\n  - id: crimes.drugs.smuggling.routes\n    level: 4\n    parent: crimes.drugs.smuggling\n"
            "    name: {en: x, zh: x}\n    description: {en: d, zh: d}\n",
            r"node 'crimes.drugs.smuggling.routes': unknown parent 'crimes.drugs.smuggling'",
        ),
        (
            f"nodes:\n  - id: crimes.drugs.trafficking.a\n    {NEW}\n    name: {{en: x, zh: x}}\n"
            f"  - id: crimes.drugs.trafficking.a\n    {NEW}\n    name: {{en: y, zh: y}}\n",
            r"node 'crimes.drugs.trafficking.a': duplicate id",
        ),
        (
            f"nodes:\n  - id: crimes.drugs.trafficking.b\n    {NEW}\n    name: {{en: only english}}\n",
            r"node 'crimes.drugs.trafficking.b': missing name in language 'zh'",
        ),
        (
            "nodes:\n  - id: crimes.drugs.trafficking.c\n    level: 3\n    parent: crimes.drugs.trafficking\n"
            "    name: {en: x, zh: x}\n    description: {en: d, zh: d}\n",
            r"node 'crimes.drugs.trafficking.c': wrong level 3",
        ),
        (
            "nodes:\n  - id: crimes.drugs.trafficking.d\n    level: 7\n    parent: crimes.drugs.trafficking\n"
            "    name: {en: x, zh: x}\n",
            r"node 'crimes.drugs.trafficking.d': wrong level 7",
        ),
        (
            "nodes:\n  - id: crimes.drugs\n    level: 3\n",
            r"node 'crimes.drugs': cannot change level",
        ),
        (
            "nodes:\n  - id: crimes.drugs.trafficking.e\n    level: 4\n    parent: crimes.drugs.trafficking\n"
            "    name: {en: x, zh: x}\n",
            r"node 'crimes.drugs.trafficking.e': level-4 nodes need a description",
        ),
        ("nodes: [unclosed\n", r"not valid YAML"),
    ],
)
def test_bad_user_yaml_names_file_and_node(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "bad-risks.yaml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError, match=message) as info:
        load_taxonomy(path)
    assert str(path) in str(info.value)
