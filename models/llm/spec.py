"""Model spec strings → backends. One string names a model and how to run it:

    openai:http://127.0.0.1:8000/v1#MODEL   an OpenAI-compatible server (vllm/transformers serve);
                                            without #MODEL the server's first /models entry is used
    endpoint:NAME                           settings.llm_endpoints[NAME] (base_url, model, api_key)
    hf:/dir#file.gguf  |  hf:/dir/file.gguf in-process transformers, from a GGUF file
    hf:/dir                                 in-process transformers, from a saved (safetensors) dir
    pkg:smollm2-135m  |  pkg:qwen2.5-1.5b   in-process transformers, a model shipped in pip packages
    vllm:/dir-or-hub-id                     in-process vLLM in Ray actors (GPU + a vLLM venv only)
    scripted:NAME?tokens=32&refuse=0.7      deterministic replies, no model: load tests only (issue 22)

A spec is the project's one spec grammar (``registry.parse_spec``): the scheme is the entry
name and everything after the first ``:`` is its ``target``, ``#MODEL`` fragment included.
Each scheme is a :class:`Scheme` subclass registered in ``SCHEMES`` with its ``Options`` model,
which splits the fragment off and checks the target; building a scheme object is cheap (no
model is loaded until :meth:`Scheme.load`). Adding one::

    @SCHEMES.register("mine", example="mine:/dir")
    class MyScheme(Scheme):
        usage = "mine:/DIR"
        def load(self, **options): ...
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlparse

from pydantic import field_validator

from trustflow.errors import ConfigError
from trustflow.models.llm.base import ChatBackend
from trustflow.models.llm.scripted import ScriptedConfig
from trustflow.registry import Options, Registry

_SCHEME_RE = re.compile(r"^[a-z][a-z0-9_-]*$")


class SchemeOptions(Options):
    """``target``: everything after ``SCHEME:``; a ``#FRAGMENT`` (after the last ``#``) is split off."""

    target: str

    @property
    def location(self) -> str:
        return self.target.rpartition("#")[0].strip() if "#" in self.target else self.target

    @property
    def fragment(self) -> str | None:
        return self.target.rpartition("#")[2].strip() if "#" in self.target else None

    @field_validator("target")
    @classmethod
    def _shape(cls, value: str) -> str:
        location, hash_, fragment = value.rpartition("#") if "#" in value else (value, "", "")
        if not location.strip():
            raise ValueError("nothing after the scheme")
        if hash_ and not fragment.strip():
            raise ValueError("empty '#' fragment")
        return value


class NoFragment(SchemeOptions):
    @field_validator("target")
    @classmethod
    def _no_fragment(cls, value: str) -> str:
        if "#" in value:
            raise ValueError("'#...' is not allowed here")
        return value


@dataclass(frozen=True)
class ModelSpec:
    scheme: str
    target: str
    fragment: str | None
    raw: str
    options: SchemeOptions | None = field(default=None, compare=False, repr=False)

    def __str__(self) -> str:
        return self.raw


class Scheme:
    """How one spec scheme is turned into a backend; built from its validated ``options``."""

    name: ClassVar[str] = ""  # set by ``@SCHEMES.register``
    Options: ClassVar[type[SchemeOptions]] = SchemeOptions
    usage: ClassVar[str] = ""

    def __init__(self, options: SchemeOptions) -> None:
        self.options = options

    def load(self, **options: Any) -> ChatBackend:
        raise NotImplementedError


# the schemes are defined below in this module (so no plugin package to discover)
SCHEMES: Registry[type[Scheme]] = Registry("LLM spec scheme", factory=lambda entry, options: entry.obj(options))


def parse_spec(raw: str) -> ModelSpec:
    """Split and validate a spec; every mistake is a ``ConfigError`` that shows the right form."""
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigError("empty model spec; expected e.g. pkg:smollm2-135m or openai:http://127.0.0.1:8000/v1#MODEL")
    text = raw.strip()
    scheme, sep, rest = text.partition(":")
    if not sep or not _SCHEME_RE.match(scheme) or "?" in scheme:
        raise ConfigError(
            f"bad model spec {raw!r}: expected SCHEME:TARGET with SCHEME one of {', '.join(SCHEMES.names())}"
        )
    entry = SCHEMES.entry(scheme)  # unknown scheme → ConfigError listing the known ones
    if not rest.strip():  # the grammar's own message would not show the expected form
        raise ConfigError(f"bad model spec {raw!r}: nothing after the scheme; expected {entry.obj.usage}")
    _, options = SCHEMES.resolve(text)
    assert isinstance(options, SchemeOptions)
    return ModelSpec(scheme, options.location, options.fragment, text, options)


def scheme_for(spec: str | ModelSpec) -> Scheme:
    """The scheme object (cheap: nothing loaded) a spec names."""
    parsed = spec if isinstance(spec, ModelSpec) else parse_spec(spec)
    options = parsed.options if parsed.options is not None else parse_spec(parsed.raw).options
    assert options is not None
    return SCHEMES.get(parsed.scheme)(options)


def load_backend(spec: str | ModelSpec, **options: Any) -> ChatBackend:
    """Build the backend a spec names; ``options`` go to its constructor (e.g.
    ``max_concurrency`` for openai:, ``batch_size`` for hf:/pkg:, ``num_gpus`` for vllm:)."""
    return scheme_for(spec).load(**options)


class OpenAIOptions(SchemeOptions):
    @field_validator("target")
    @classmethod
    def _http_url(cls, value: str) -> str:
        url = urlparse(value.rpartition("#")[0] if "#" in value else value)
        if url.scheme not in ("http", "https") or not url.netloc:
            raise ValueError(f"{url.geturl()!r} is not an http(s) URL; expected {OpenAIScheme.usage}")
        try:
            _ = url.port  # raises for a non-numeric port
        except ValueError:
            raise ValueError(f"the port is not a number; expected {OpenAIScheme.usage}") from None
        return value


@SCHEMES.register("openai", options=OpenAIOptions, example="openai:http://127.0.0.1:8000/v1#MODEL")
class OpenAIScheme(Scheme):
    usage = "openai:http(s)://HOST:PORT/v1[#MODEL]"

    def load(self, **options: Any) -> ChatBackend:
        from trustflow.models.llm.openai_backend import OpenAIBackend

        return OpenAIBackend(self.options.location, self.options.fragment, **options)


@SCHEMES.register("endpoint", options=NoFragment, example="endpoint:judge")
class EndpointScheme(Scheme):
    usage = "endpoint:NAME (a key of the llm_endpoints setting)"

    def load(self, **options: Any) -> ChatBackend:
        from trustflow.models.llm.openai_backend import OpenAIBackend
        from trustflow.settings import load_settings

        endpoints = load_settings().llm_endpoints
        name = self.options.target
        if name not in endpoints:
            known = ", ".join(sorted(endpoints)) or "none configured"
            raise ConfigError(f"llm_endpoints has no {name!r}; known: {known}")
        ep = endpoints[name]
        options.setdefault("api_key", ep.api_key)
        # the endpoint's limits and prices win over the run's generic --concurrency
        options.update(ep.backend_options())
        return OpenAIBackend(ep.base_url, ep.model, **options)


class HFOptions(SchemeOptions):
    @field_validator("target")
    @classmethod
    def _gguf_fragment(cls, value: str) -> str:
        location, _, fragment = value.rpartition("#") if "#" in value else (value, "", None)
        if fragment is not None and not fragment.strip().endswith(".gguf"):
            raise ValueError(f"the '#' part names a GGUF file, got {fragment.strip()!r}; expected {HFScheme.usage}")
        if fragment is not None and location.strip().endswith(".gguf"):
            raise ValueError("give the GGUF either as DIR#FILE.gguf or as DIR/FILE.gguf, not both")
        return value


class LocalScheme(Scheme):
    """A scheme whose model files are on this machine (servers can load them too)."""

    def local(self) -> tuple[Path, str | None]:
        raise NotImplementedError


@SCHEMES.register("hf", options=HFOptions, example="hf:/models/smol#model.gguf")
class HFScheme(LocalScheme):
    usage = "hf:/DIR (saved transformers model), hf:/DIR#FILE.gguf or hf:/DIR/FILE.gguf"

    def local(self) -> tuple[Path, str | None]:
        path = Path(self.options.location).expanduser()
        if self.options.fragment is None and path.suffix == ".gguf":
            return path.parent, path.name
        return path, self.options.fragment

    def load(self, **options: Any) -> ChatBackend:
        from trustflow.models.llm.transformers_backend import TransformersBackend

        path, gguf = self.local()
        return TransformersBackend(path, gguf, **options)


class PackagedOptions(NoFragment):
    @field_validator("target")
    @classmethod
    def _packaged_name(cls, value: str) -> str:
        from trustflow.models.llm.packaged import PACKAGED

        PACKAGED.get(value)  # unknown name → ConfigError listing the known ones
        return value


@SCHEMES.register("pkg", options=PackagedOptions, example="pkg:smollm2-135m")
class PackagedScheme(LocalScheme):
    usage = "pkg:NAME with NAME one of the packaged models"

    def local(self) -> tuple[Path, str | None]:
        from trustflow.models.llm.packaged import locate

        gguf = locate(self.options.target)
        return gguf.directory, gguf.filename

    def load(self, *, convert: bool = True, **options: Any) -> ChatBackend:
        """From a safetensors copy of the GGUF in the load dtype, built once into the model cache.

        Dequantising the GGUF costs about a minute for Qwen2.5-1.5B on every load; the
        converted copy loads in seconds, and every consumer (targets, critics, probes) then
        computes with the same weights. ``convert=False`` loads the GGUF directly.
        """
        from trustflow.models.llm.packaged import PACKAGED, GGUFModel, gguf_to_hf_dir
        from trustflow.models.llm.transformers_backend import TransformersBackend

        name = self.options.target
        path, gguf = self.local()
        options.setdefault("name", name)
        if options.get("device", "cpu") == "cpu":
            options.setdefault("dtype", PACKAGED.get(name).default_dtype())
        if convert and gguf is not None:
            converted = gguf_to_hf_dir(GGUFModel(path, gguf), dtype=options.get("dtype", "float32"))
            return TransformersBackend(converted, None, **options)
        return TransformersBackend(path, gguf, **options)


@SCHEMES.register("vllm", options=NoFragment, example="vllm:/models/qwen")
class VLLMScheme(Scheme):
    usage = "vllm:/DIR or vllm:HUB_ID (in-process vLLM; GPU only)"

    def load(self, **options: Any) -> ChatBackend:
        from trustflow.models.llm.vllm_backend import VLLMBackend

        return VLLMBackend(self.options.target, **options)


class ScriptedOptions(NoFragment, ScriptedConfig):
    """``scripted:NAME`` plus the backend's own options (one definition: ScriptedConfig)."""


@SCHEMES.register("scripted", options=ScriptedOptions, example="scripted:load?tokens=16&refuse=0.5")
class ScriptedScheme(Scheme):
    """A deterministic load generator (models/llm/scripted.py): for scale tests, never results."""

    usage = "scripted:NAME[?tokens=32&refuse=0.7&latency_ms=0&concurrency=8&seed=0&comply_after=0] (load tests only)"

    def load(self, **options: Any) -> ChatBackend:
        from trustflow.models.llm.scripted import ScriptedBackend

        fields = self.options.model_dump(exclude={"target"})
        return ScriptedBackend(self.options.target, ScriptedConfig(**fields))


def endpoint_prices(spec: str) -> tuple[float | None, float | None]:
    """(USD per 1k prompt tokens, per 1k completion tokens) of an ``endpoint:NAME`` spec from
    ``llm_endpoints`` (None, None for any other spec, or an endpoint without prices)."""
    parsed = parse_spec(spec)
    if parsed.scheme != "endpoint":
        return None, None
    from trustflow.settings import load_settings

    ep = load_settings().llm_endpoints.get(parsed.target)
    return (ep.price_per_1k_prompt, ep.price_per_1k_completion) if ep is not None else (None, None)


def local_model(spec: str | ModelSpec) -> tuple[Path, str | None]:
    """(directory, gguf file or None) of a local spec (hf: or pkg:), for servers to load."""
    scheme = scheme_for(spec)
    if not isinstance(scheme, LocalScheme):
        raise ConfigError(f"{str(spec).strip()!r} is not a local model: use an hf: or pkg: spec")
    return scheme.local()
