"""The editor contract: keep the object, change one attribute, say exactly what was realised.

ImageNet-E edits one attribute of an image at a time (background complexity, object size,
position, direction) while the object's pixels stay the same, so an accuracy drop can be
blamed on that attribute alone. An editor is one module with one decorator::

    @EDITORS.register("size", options=SizeOptions)
    class SizeEditor(Editor): ...

``levels`` are the attribute levels an evaluation sweeps by default (strings, as they appear
in the ``level`` column); ``edit`` makes one level of one object and returns the new image,
the object's exact new mask and the attribute value the edit *realises* (measured on the
output, not copied from the request), so tests and reports can check what was asked.
All randomness comes from the ``rng`` argument: the same object, level and seed give the
same pixels whatever the worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np

from trustflow.registry import Options, Registry

O = TypeVar("O", bound=Options)  # noqa: E741


@dataclass(frozen=True)
class MaskedObject:
    """One image with its object's exact mask (a row of the ``masked_objects`` stage)."""

    object_id: str
    label: str
    image: np.ndarray  # H×W×3 uint8 RGB
    mask: np.ndarray  # H×W bool, True on the object


@dataclass(frozen=True)
class EditResult:
    """One edited image: the pixels, the object's mask after the edit, the realised value."""

    image: np.ndarray  # H×W×3 uint8 RGB (same size as the input)
    mask: np.ndarray  # H×W bool
    value: float  # the attribute value realised (see each editor's docstring for its unit)


class Editor(Generic[O]):
    """Base of every attribute editor; ``Options`` is set by the registry decorator."""

    name: ClassVar[str]
    Options: ClassVar[type[Any]]
    attribute: ClassVar[str]  # the ``attribute`` column: background|size|position|direction

    def __init__(self, options: O) -> None:
        self.options = options

    def levels(self) -> list[str]:
        """The levels swept by default, in report order."""
        raise NotImplementedError

    def edit(self, obj: MaskedObject, level: str, rng: np.random.Generator) -> EditResult:
        raise NotImplementedError


EDITORS: Registry[type[Editor[Any]]] = Registry("attribute editor", plugins="trustflow.tasks.attributes.editors")

__all__ = ["EDITORS", "EditResult", "Editor", "MaskedObject"]
