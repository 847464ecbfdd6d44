"""Texts in memory for training and scoring: what a ``fairness_texts`` stage holds, as arrays."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa

from trustflow.errors import InputError


@dataclass(frozen=True)
class TextData:
    """Texts with task labels ``y`` (index into ``classes``) and attribute indices ``z`` (into ``groups``)."""

    texts: list[str]
    y: np.ndarray
    z: np.ndarray
    classes: list[str]
    groups: list[str]
    pair_ids: list[str | None] | None = None

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, idx: np.ndarray) -> TextData:
        pairs = [self.pair_ids[i] for i in idx] if self.pair_ids is not None else None
        return replace(self, texts=[self.texts[i] for i in idx], y=self.y[idx], z=self.z[idx], pair_ids=pairs)

    @property
    def group_prior(self) -> np.ndarray:
        """Share of each group: what a discriminator that learnt nothing would predict."""
        counts = np.bincount(self.z, minlength=len(self.groups)).astype(np.float64)
        return counts / max(counts.sum(), 1.0)


def from_table(
    table: pa.Table, classes: list[str], split: str | None = None, groups: list[str] | None = None
) -> TextData:
    """Rows of a ``fairness_texts`` table (one split, or all); group order sorted unless given."""
    rows = table.to_pydict()
    keep = [i for i, s in enumerate(rows["split"]) if split is None or s == split]
    if not keep:
        raise InputError(f"no {split or ''} rows in the texts table".replace("  ", " "))
    groups = groups or sorted({rows["attribute"][i] for i in keep})
    gi = {g: i for i, g in enumerate(groups)}
    unknown = {rows["attribute"][i] for i in keep} - set(gi)
    if unknown:
        raise InputError(f"attribute values {sorted(unknown)} are not among the groups {groups}")
    return TextData(
        texts=[rows["text"][i] for i in keep],
        y=np.array([rows["label_id"][i] for i in keep], dtype=np.int64),
        z=np.array([gi[rows["attribute"][i]] for i in keep], dtype=np.int64),
        classes=list(classes),
        groups=groups,
        pair_ids=[rows["pair_id"][i] for i in keep],
    )
