"""Typed registries: one decorator registers an implementation under a name.

Attacks, critics, detectors, training methods and dataset kinds all use this, so adding
one is one file with one ``@REGISTRY.register("name")`` line, and a bad name produces an
error that lists what exists.
"""

from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from trustflow.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Name → implementation, with clear errors for unknown and duplicate names."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ConfigError(f"{self.what} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise ConfigError(f"unknown {self.what} {name!r}; known: {known}") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
