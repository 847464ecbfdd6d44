"""One registry contract for every kind of plugin: a name, an options model, a spec string.

Attacks, critics, detectors, training methods, shifts, corruptions, classifiers, LLM
schemes, selection strategies, dataset kinds and event sources are all held in a
:class:`Registry`. Adding one is one file with one decorator::

    class PGDOptions(Options):
        eps: float = 8 / 255
        steps: int = Field(10, ge=1)

    @EVAL_ATTACKS.register("pgd", options=PGDOptions)
    class PGD(EvalAttack): ...

The decorator sets the entry's ``name`` once (on the class or function) and records its
options model (``options=``; for a class the attribute ``Options`` is taken when not given,
and set when given, so the model has one name everywhere). The modules of a registry's
plugin package are imported automatically the first time the registry is asked for a name,
so no package keeps a hand-written import list.

Every plugin is named by one spec grammar, parsed only here (:func:`parse_spec`)::

    spec   := NAME [ ":" TARGET ] [ "?" KEY "=" VALUE { "&" KEY "=" VALUE } ]

``NAME:TARGET`` is shorthand for the option ``target=TARGET`` (a path, an architecture, a
URL, a nested LLM spec). ``NAME`` is everything before the first ``:`` or ``?``; the query
is everything after the first ``?``, split on ``&``, each part on its first ``=``: targets
and values may hold ``:``, ``#``, ``,``, ``/`` and values ``=``, but neither holds ``?``/``&``.
Values stay strings; the entry's pydantic model converts and checks them, and every
validation failure becomes one :class:`ConfigError` naming the entry and the field
(:func:`validate_options`). :func:`format_spec` writes the canonical form back (options
sorted), so a spec round-trips.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import pkgutil
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from trustflow.errors import ConfigError

T = TypeVar("T")
O = TypeVar("O", bound=BaseModel)  # noqa: E741  (the options model type)

TARGET = "target"


class Options(BaseModel):
    """Base of every plugin's options: immutable, and an unknown key is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoOptions(Options):
    """The options of a plugin that takes none."""


# -- the spec grammar -------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """A parsed spec: the entry's name and its options as strings (``target`` included)."""

    name: str
    options: Mapping[str, str] = field(default_factory=dict)
    raw: str = ""

    @property
    def target(self) -> str | None:
        return self.options.get(TARGET)

    def __str__(self) -> str:
        return format_spec(self.name, self.options)


def parse_spec(text: str, what: str = "spec") -> Spec:
    """Split a spec string (grammar in the module docstring); ``ConfigError`` when malformed."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"empty {what}")
    raw = text
    text = text.strip()
    head, _, query = text.partition("?")
    name, colon, target = head.partition(":")
    name = name.strip()
    if not name:
        raise ConfigError(f"bad {what} {raw!r}: no name before ':' or '?'")
    options: dict[str, str] = {}
    if colon:
        if not target.strip():
            raise ConfigError(f"bad {what} {raw!r}: nothing after '{name}:'")
        options[TARGET] = target.strip()
    for part in filter(None, query.split("&")):
        key, eq, value = part.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ConfigError(f"bad {what} {raw!r}: option {part!r} is not key=value")
        if key in options:
            twice = f"'{name}:<target>' and option 'target'" if key == TARGET else f"option {key!r}"
            raise ConfigError(f"bad {what} {raw!r}: {twice} given twice")
        options[key] = value.strip()
    return Spec(name, options, raw)


def format_spec(name: str, options: Mapping[str, Any] | None = None) -> str:
    """The canonical spec string: ``name[:target][?k=v&...]`` with the keys sorted."""
    options = dict(options or {})
    target = options.pop(TARGET, None)
    text = name if target is None else f"{name}:{_format_value(target)}"
    if options:
        text += "?" + "&".join(f"{k}={_format_value(options[k])}" for k in sorted(options))
    return text


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ",".join(_format_value(v) for v in value)
    return str(value)


# -- option validation --------------------------------------------------------------------


def validate_options(what: str, model: type[O], values: Mapping[str, Any]) -> O:
    """``model`` built from ``values``, or one ``ConfigError`` naming ``what`` and each field.

    This is the only place a pydantic error becomes a user-facing message: an unknown key
    lists the valid ones, a bad value names its field and says why."""
    try:
        return model.model_validate(dict(values))
    except ValidationError as exc:
        known = ", ".join(sorted(model.model_fields)) or "none"
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "options"
            if err["type"] == "extra_forbidden":
                problems.append(f"unknown option {where!r} (known: {known})")
            elif err["type"] == "missing":
                problems.append(f"option {where!r} is required")
            else:
                problems.append(f"option {where!r}: {err['msg']}")
        raise ConfigError(f"{what}: {'; '.join(problems)}") from None


# -- the registry ------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered plugin: its name, the implementation, its options model and an
    example spec that builds (for entries whose options have required fields)."""

    name: str
    obj: T
    options: type[BaseModel]
    example: str | None = None


_ALL: list[Registry[Any]] = []


class Registry(Generic[T]):
    """Name → implementation, with clear errors for unknown and duplicate names.

    ``plugins`` is the dotted name of the package whose modules register into this
    registry; they are imported on the first lookup (so adding a module is enough).
    ``factory(entry, options)`` turns an entry and its validated options into a ready object
    (e.g. ``entry.obj(options)`` for classes); :meth:`create` uses it, and the contract tests
    build every entry through it."""

    def __init__(
        self,
        what: str,
        plugins: str | None = None,
        factory: Callable[[Entry[T], Any], Any] | None = None,
    ) -> None:
        self.what = what
        self.plugins = plugins
        self.factory = factory
        self._entries: dict[str, Entry[T]] = {}
        self._discovered = plugins is None
        self.module = sys._getframe(1).f_globals.get("__name__", "")  # where it was created
        _ALL.append(self)

    # registration

    def register(
        self, name: str, *, options: type[BaseModel] | None = None, example: str | None = None
    ) -> Callable[[T], T]:
        """Decorator: register ``obj`` as ``name`` with its options model (see module doc)."""

        def decorator(obj: T) -> T:
            existing = self._entries.get(name)
            if existing is not None and existing.obj is not obj:
                raise ConfigError(f"{self.what} {name!r} is registered twice")
            model = options or getattr(obj, "Options", None) or NoOptions
            if not (isinstance(model, type) and issubclass(model, BaseModel)):
                raise ConfigError(f"{self.what} {name!r}: options must be a pydantic model, not {model!r}")
            shared = any(e.obj is obj for e in self._entries.values())  # one object, several names
            for attr, value in (() if shared else (("name", name),)) + (("Options", model),):
                with contextlib.suppress(AttributeError, TypeError):  # a frozen instance: the entry knows
                    setattr(obj, attr, value)
            self._entries[name] = Entry(name, obj, model, example)
            return obj

        return decorator

    def discover(self) -> None:
        """Import every plugin module once: each module of the plugin package (``_*`` excepted),
        or, for a pattern such as ``trustflow.tasks.*.report``, that module of every subpackage."""
        if self._discovered or self.plugins is None:
            return
        self._discovered = True
        for name in _plugin_modules(self.plugins):
            importlib.import_module(name)

    # lookup

    def entry(self, name: str) -> Entry[T]:
        self.discover()
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(self.names()) or "none"
            raise ConfigError(f"unknown {self.what} {name!r}; known: {known}") from None

    def get(self, name: str) -> T:
        return self.entry(name).obj

    def names(self) -> list[str]:
        self.discover()
        return sorted(self._entries)

    def entries(self) -> list[Entry[T]]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        self.discover()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    # specs and options

    def options(self, name: str, values: Mapping[str, Any] | None = None) -> BaseModel:
        """The validated options of entry ``name``; errors name the entry and the field."""
        entry = self.entry(name)
        return validate_options(f"{self.what} {name!r}", entry.options, values or {})

    def resolve(self, spec: str | Spec, **overrides: Any) -> tuple[Entry[T], BaseModel]:
        """A spec (string or parsed) → (its entry, its validated options).

        ``overrides`` win over the spec's own options (for values a caller sets in code)."""
        parsed = spec if isinstance(spec, Spec) else parse_spec(spec, f"{self.what} spec")
        entry = self.entry(parsed.name)
        values: dict[str, Any] = {**parsed.options, **overrides}
        return entry, validate_options(f"{self.what} {parsed.name!r}", entry.options, values)

    def spec(self, name: str, options: BaseModel | Mapping[str, Any] | None = None) -> str:
        """The canonical spec of entry ``name`` with ``options`` (defaults left out)."""
        entry = self.entry(name)
        values = options.model_dump(exclude_defaults=True) if isinstance(options, BaseModel) else dict(options or {})
        return format_spec(entry.name, values)

    def create(self, spec: str | Spec, **overrides: Any) -> Any:
        """The ready object a spec names, built by the registry's ``factory``."""
        if self.factory is None:
            raise ConfigError(f"{self.what} entries are not built from a spec alone")
        entry, options = self.resolve(spec, **overrides)
        return self.factory(entry, options)

    def example(self, name: str) -> str:
        """A spec of entry ``name`` that builds: its registered example, else the bare name."""
        return self.entry(name).example or name


def _plugin_modules(plugins: str) -> list[str]:
    """Dotted names of the modules a ``plugins`` package or ``prefix.*.suffix`` pattern holds."""
    if "*" in plugins:
        prefix, _, suffix = plugins.partition(".*.")
        package = importlib.import_module(prefix)
        candidates = [f"{prefix}.{m.name}.{suffix}" for m in pkgutil.iter_modules(package.__path__) if m.ispkg]
        return [name for name in candidates if importlib.util.find_spec(name) is not None]
    package = importlib.import_module(plugins)
    return [f"{plugins}.{m.name}" for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_")]


def all_registries() -> list[Registry[Any]]:
    """Every registry the package's own modules created so far (the contract tests walk these)."""
    return [r for r in _ALL if r.module.startswith("trustflow.")]
