"""Which classifier outputs count as a hit for a dataset's class: the label map.

A dataset names its classes its own way ("motorcycle", "Egyptian cat", "cat"); a classifier
has its own class list (ImageNet-1k's 1000 names for MobileNetV2, EfficientNet-Lite0 and
timm's ImageNet weights, or the sorted class folders a trustflow model was trained on). A
label map turns each dataset label into the *set* of classifier class indices that count as
correct, because one object may be fairly named by several ImageNet classes: a motorcycle
photo is "moped" or "motor scooter" (ImageNet has no "motorcycle"), a house cat is "tabby",
"tiger cat" or "Egyptian cat". Top-1 is a hit when the arg-max is in the set, top-5 when any
of the five best is.

How a label is mapped (first rule that applies):

1. an explicit entry of the user's map (``{"motorcycle": ["moped", "motor scooter"]}``),
   names or indices of the classifier's classes — one map serves every classifier of an
   evaluation, so the entries that are not this classifier's classes are passed over, and
   the label falls through to the next rules;
2. for ImageNet-1k classifiers, a built-in group (:data:`IMAGENET_GROUPS`): a dataset label
   that names the group ("cat", "motorcycle") or any member ("tabby", "moped") maps to the
   whole group;
3. a label equal to one of the classifier's class names (case-insensitive).

A label no rule maps is *unmapped*: :meth:`LabelMap.build` raises a ``ConfigError`` naming
every such label, unless told to skip them (their images are then left out of that
classifier's evaluation and counted).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from trustflow.errors import ConfigError

IMAGENET_CLASSES = 1000

# Groups of ImageNet-1k classes that are one everyday concept; keys are extra aliases.
IMAGENET_GROUPS: dict[str, tuple[str, ...]] = {
    "cat": ("tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"),
    "motorcycle": ("moped", "motor scooter"),
    "rocket": ("missile", "projectile"),
    "coffee": ("espresso",),
    "horse": ("sorrel",),
}


@functools.lru_cache(maxsize=1)
def imagenet_classes() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names in index order (torchvision's list, offline)."""
    from torchvision.models import MobileNet_V2_Weights

    names = tuple(MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"])
    if len(names) != IMAGENET_CLASSES:  # pragma: no cover - a torchvision change
        raise ConfigError(f"torchvision lists {len(names)} ImageNet classes, expected {IMAGENET_CLASSES}")
    return names


def _fold(text: str) -> str:
    return " ".join(str(text).replace("_", " ").lower().split())


@dataclass(frozen=True)
class LabelMap:
    """Dataset label → the classifier class indices that count as that label."""

    classes: tuple[str, ...]  # the classifier's class names, index order
    hits: dict[str, frozenset[int]]
    unmapped: tuple[str, ...] = field(default=())

    @classmethod
    def build(
        cls,
        labels: Iterable[str],
        classes: Sequence[str],
        explicit: Mapping[str, Sequence[str | int]] | None = None,
        imagenet: bool = False,
        skip_unmapped: bool = False,
    ) -> LabelMap:
        """Map every dataset label (rules in the module docstring); ``ConfigError`` naming
        the unmapped labels unless ``skip_unmapped``."""
        names = tuple(str(c) for c in classes)
        index = {_fold(c): i for i, c in enumerate(names)}
        explicit = {_fold(k): v for k, v in (explicit or {}).items()}
        groups: dict[str, tuple[str, ...]] = {}
        if imagenet:
            for alias, members in IMAGENET_GROUPS.items():
                for key in (alias, *members):
                    groups[_fold(key)] = members
        hits: dict[str, frozenset[int]] = {}
        unmapped: list[str] = []
        for label in sorted(set(labels)):
            key = _fold(label)
            found = [i for v in explicit.get(key, ()) if (i := _class_index(v, names, index)) is not None]
            if found:
                hits[label] = frozenset(found)
            elif key in groups:
                hits[label] = frozenset(index[_fold(m)] for m in groups[key] if _fold(m) in index)
            elif key in index:
                hits[label] = frozenset({index[key]})
            else:
                unmapped.append(label)
        if unmapped and not skip_unmapped:
            kind = "ImageNet-1k" if imagenet else f"{len(names)}-class"
            named = [f"{u!r} (the map's {', '.join(map(repr, explicit[_fold(u)]))} are not among its classes)"
                     if _fold(u) in explicit else repr(u) for u in unmapped]  # fmt: skip
            raise ConfigError(
                f"dataset labels {', '.join(named)} match no class of the {kind} classifier; "
                "give a label map (label=class|class, or a JSON file {label: [class, ...]}) or skip them"
            )
        return cls(names, hits, tuple(unmapped))

    def describe(self, label: str) -> list[str]:
        """The class names a label counts as (reports and docs)."""
        return sorted(self.classes[i] for i in self.hits.get(label, ()))


def _class_index(value: str | int, names: tuple[str, ...], index: dict[str, int]) -> int | None:
    """The classifier index a map entry names (a class name, or an index in range), or None:
    one map serves several classifiers, so an entry for another classifier's classes is
    passed over here, and a label left without any class is reported by ``build``."""
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        i = int(value)
        return i if 0 <= i < len(names) else None
    return index.get(_fold(str(value)))


def parse_label_map(items: Iterable[str]) -> dict[str, list[str]]:
    """``["motorcycle=moped|motor scooter", "cat=tabby"]`` → {label: [classes]}; ``ConfigError``
    on an item without ``=`` or with no class."""
    out: dict[str, list[str]] = {}
    for item in items:
        label, sep, rest = item.partition("=")
        classes = [c.strip() for c in rest.split("|") if c.strip()]
        if not sep or not label.strip() or not classes:
            raise ConfigError(f"label map entry {item!r}: use label=class or label=class|class")
        out.setdefault(label.strip(), []).extend(classes)
    return out


__all__ = ["IMAGENET_GROUPS", "LabelMap", "imagenet_classes", "parse_label_map"]
