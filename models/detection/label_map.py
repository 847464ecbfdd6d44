"""A backend's native labels → the dataset's category ids, decided once at load time.

Why this is strict: AP per category is only meaningful when a detector's class really is
the dataset's class, so names are matched exactly (ignoring case and surrounding space) and
no synonyms are guessed — a ``face`` box is not a ``person`` box, and ``motorbike`` is not
silently ``motorcycle``. Anything else is said explicitly with the ``label_map`` option::

    label_map=native:dataset_name,native2:dataset_name2

Each entry decides its native label (overriding the name match); the native labels it does
not mention still match by exact name. Both sides are names, matched case-insensitively;
a name that is not a native label / dataset category is a ``ConfigError`` listing the valid
ones. Several native labels may map to one dataset category, never one to several.

Detections whose native label maps to nothing are dropped (the detector counts them in
``dropped_unmapped``). If no native label maps to any dataset category the detector could
only ever return nothing, so that is a ``ConfigError`` naming both label sets.
"""

from __future__ import annotations

from collections.abc import Mapping

from trustflow.errors import ConfigError

_SHOW = 12  # label names listed in an error before "… (N in all)"


def _norm(name: str) -> str:
    return name.strip().casefold()


def _listing(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:_SHOW])
    return shown + (f", … ({len(names)} in all)" if len(names) > _SHOW else "")


def _index_names(names: Mapping[int, str]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for key, name in names.items():
        out.setdefault(_norm(str(name)), []).append(int(key))
    return out


def parse_label_map(text: str, detector: str) -> list[tuple[str, str]]:
    """``a:b,c:d`` → ``[("a", "b"), ("c", "d")]``; ``ConfigError`` naming the bad entry."""
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for entry in text.split(","):
        if not entry.strip():
            continue
        native, colon, target = entry.partition(":")
        if not colon or not native.strip() or not target.strip():
            raise ConfigError(f"detector {detector!r}: label_map entry {entry.strip()!r} is not native:dataset_name")
        if _norm(native) in seen:
            raise ConfigError(f"detector {detector!r}: label_map maps native label {native.strip()!r} twice")
        seen.add(_norm(native))
        pairs.append((native.strip(), target.strip()))
    if not pairs:
        raise ConfigError(f"detector {detector!r}: label_map={text!r} has no native:dataset_name entries")
    return pairs


def build_label_map(
    native: Mapping[int, str], categories: Mapping[int, str], explicit: str | None, detector: str
) -> dict[int, int]:
    """Native label index → dataset category id, for every native label that maps.

    ``native`` is the backend's index → name (e.g. ``{0: "face"}``, torchvision's 91 COCO
    indices); ``categories`` the dataset's id → name."""
    dataset = _index_names(categories)
    native_by_name = _index_names(native)
    dataset_names = sorted({str(n) for n in categories.values()})
    native_names = sorted({str(n) for n in native.values()})

    def dataset_id(name: str) -> int:
        ids = dataset.get(_norm(name), [])
        if len(ids) > 1:
            raise ConfigError(
                f"detector {detector!r}: dataset category name {name!r} is ambiguous (ids "
                f"{', '.join(map(str, sorted(ids)))}); give the categories distinct names"
            )
        return ids[0]

    decided: dict[str, int] = {}
    if explicit:
        for native_name, target in parse_label_map(explicit, detector):
            if _norm(native_name) not in native_by_name:
                raise ConfigError(
                    f"detector {detector!r}: label_map names native label {native_name!r}, which the "
                    f"detector does not have; its labels: {_listing(native_names)}"
                )
            if _norm(target) not in dataset:
                raise ConfigError(
                    f"detector {detector!r}: label_map maps {native_name!r} to {target!r}, which is not "
                    f"a dataset category; the dataset's: {_listing(dataset_names)}"
                )
            decided[_norm(native_name)] = dataset_id(target)
    mapping: dict[int, int] = {}
    for index, name in native.items():
        key = _norm(str(name))
        if key in decided:
            cat = decided[key]
        elif key in dataset:
            cat = dataset_id(str(name))
        else:
            cat = None
        if cat is not None:
            mapping[int(index)] = cat
    if not mapping:
        example = f"{native_names[0] if native_names else 'native'}:{dataset_names[0] if dataset_names else 'name'}"
        raise ConfigError(
            f"detector {detector!r}: none of its labels ({_listing(native_names)}) is a dataset category "
            f"({_listing(dataset_names)}); map them explicitly, e.g. label_map={example}"
        )
    return mapping


__all__ = ["build_label_map", "parse_label_map"]
