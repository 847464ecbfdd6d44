"""Model spec strings → backends. One string names a model and how to run it:

    openai:http://127.0.0.1:8000/v1#MODEL   an OpenAI-compatible server (vllm/transformers serve);
                                            without #MODEL the server's first /models entry is used
    endpoint:NAME                           settings.llm_endpoints[NAME] (base_url, model, api_key)
    hf:/dir#file.gguf  |  hf:/dir/file.gguf in-process transformers, from a GGUF file
    hf:/dir                                 in-process transformers, from a saved (safetensors) dir
    pkg:smollm2-135m  |  pkg:qwen2.5-1.5b   in-process transformers, a model shipped in pip packages
    vllm:/dir-or-hub-id                     in-process vLLM in Ray actors (GPU + a vLLM venv only)

Schemes live in ``SCHEMES`` (the project's ``Registry``, holding one ``Scheme`` instance per
name); adding one is a ``Scheme`` subclass plus ``SCHEMES.register("name")(MyScheme())``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from trustflow.errors import ConfigError
from trustflow.models.llm.base import ChatBackend
from trustflow.registry import Registry

_SCHEME_RE = re.compile(r"^[a-z][a-z0-9_-]*$")


@dataclass(frozen=True)
class ModelSpec:
    scheme: str
    target: str
    fragment: str | None
    raw: str

    def __str__(self) -> str:
        return self.raw


class Scheme:
    """How one spec scheme is checked and turned into a backend."""

    usage: str = ""

    def validate(self, spec: ModelSpec) -> None:  # raise ConfigError
        if not spec.target:
            self.bad(spec, "nothing after the scheme")

    def load(self, spec: ModelSpec, **options: Any) -> ChatBackend:
        raise NotImplementedError

    def bad(self, spec: ModelSpec, why: str) -> None:
        raise ConfigError(f"bad model spec {spec.raw!r}: {why}; expected {self.usage}")

    def no_fragment(self, spec: ModelSpec) -> None:
        if spec.fragment is not None:
            self.bad(spec, "'#...' is not allowed here")


SCHEMES: Registry[Scheme] = Registry("LLM spec scheme")


def parse_spec(raw: str) -> ModelSpec:
    """Split and validate a spec; every mistake is a ``ConfigError`` that shows the right form."""
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigError("empty model spec; expected e.g. pkg:smollm2-135m or openai:http://127.0.0.1:8000/v1#MODEL")
    text = raw.strip()
    scheme, sep, rest = text.partition(":")
    if not sep or not _SCHEME_RE.match(scheme):
        raise ConfigError(
            f"bad model spec {raw!r}: expected SCHEME:TARGET with SCHEME one of {', '.join(SCHEMES.names())}"
        )
    handler = SCHEMES.get(scheme)  # unknown scheme → ConfigError listing the known ones
    target, hash_, fragment = rest.rpartition("#") if "#" in rest else (rest, "", "")
    spec = ModelSpec(scheme, target.strip(), fragment.strip() if hash_ else None, text)
    if hash_ and not spec.fragment:
        handler.bad(spec, "empty '#' fragment")
    handler.validate(spec)
    return spec


def load_backend(spec: str | ModelSpec, **options: Any) -> ChatBackend:
    """Build the backend a spec names; ``options`` go to its constructor (e.g.
    ``max_concurrency`` for openai:, ``batch_size`` for hf:/pkg:, ``num_gpus`` for vllm:)."""
    parsed = spec if isinstance(spec, ModelSpec) else parse_spec(spec)
    return SCHEMES.get(parsed.scheme).load(parsed, **options)


class OpenAIScheme(Scheme):
    usage = "openai:http(s)://HOST:PORT/v1[#MODEL]"

    def validate(self, spec: ModelSpec) -> None:
        super().validate(spec)
        url = urlparse(spec.target)
        if url.scheme not in ("http", "https") or not url.netloc:
            self.bad(spec, f"{spec.target!r} is not an http(s) URL")
        try:
            url.port
        except ValueError:
            self.bad(spec, "the port is not a number")

    def load(self, spec: ModelSpec, **options: Any) -> ChatBackend:
        from trustflow.models.llm.openai_backend import OpenAIBackend

        return OpenAIBackend(spec.target, spec.fragment, **options)


class EndpointScheme(Scheme):
    usage = "endpoint:NAME (a key of the llm_endpoints setting)"

    def validate(self, spec: ModelSpec) -> None:
        super().validate(spec)
        self.no_fragment(spec)

    def load(self, spec: ModelSpec, **options: Any) -> ChatBackend:
        from trustflow.models.llm.openai_backend import OpenAIBackend
        from trustflow.settings import load_settings

        endpoints = load_settings().llm_endpoints
        if spec.target not in endpoints:
            known = ", ".join(sorted(endpoints)) or "none configured"
            raise ConfigError(f"llm_endpoints has no {spec.target!r}; known: {known}")
        ep = endpoints[spec.target]
        options.setdefault("api_key", ep.api_key)
        return OpenAIBackend(ep.base_url, ep.model, **options)


class HFScheme(Scheme):
    usage = "hf:/DIR (saved transformers model), hf:/DIR#FILE.gguf or hf:/DIR/FILE.gguf"

    def validate(self, spec: ModelSpec) -> None:
        super().validate(spec)
        if spec.fragment is not None and not spec.fragment.endswith(".gguf"):
            self.bad(spec, f"the '#' part names a GGUF file, got {spec.fragment!r}")
        if spec.fragment is not None and spec.target.endswith(".gguf"):
            self.bad(spec, "give the GGUF either as DIR#FILE.gguf or as DIR/FILE.gguf, not both")

    def local(self, spec: ModelSpec) -> tuple[Path, str | None]:
        path = Path(spec.target).expanduser()
        if spec.fragment is None and path.suffix == ".gguf":
            return path.parent, path.name
        return path, spec.fragment

    def load(self, spec: ModelSpec, **options: Any) -> ChatBackend:
        from trustflow.models.llm.transformers_backend import TransformersBackend

        path, gguf = self.local(spec)
        return TransformersBackend(path, gguf, **options)


class PackagedScheme(Scheme):
    usage = "pkg:NAME with NAME one of the packaged models"

    def validate(self, spec: ModelSpec) -> None:
        from trustflow.models.llm.packaged import PACKAGED

        super().validate(spec)
        self.no_fragment(spec)
        PACKAGED.get(spec.target)  # unknown name → ConfigError listing the known ones

    def local(self, spec: ModelSpec) -> tuple[Path, str | None]:
        from trustflow.models.llm.packaged import locate

        gguf = locate(spec.target)
        return gguf.directory, gguf.filename

    def load(self, spec: ModelSpec, *, convert: bool = True, **options: Any) -> ChatBackend:
        """From a safetensors copy of the GGUF in the load dtype, built once into the model cache.

        Dequantising the GGUF costs about a minute for Qwen2.5-1.5B on every load; the
        converted copy loads in seconds, and every consumer (targets, critics, probes) then
        computes with the same weights. ``convert=False`` loads the GGUF directly.
        """
        from trustflow.models.llm.packaged import PACKAGED, GGUFModel, gguf_to_hf_dir
        from trustflow.models.llm.transformers_backend import TransformersBackend

        path, gguf = self.local(spec)
        options.setdefault("name", spec.target)
        if options.get("device", "cpu") == "cpu":
            options.setdefault("dtype", PACKAGED.get(spec.target).default_dtype())
        if convert and gguf is not None:
            converted = gguf_to_hf_dir(GGUFModel(path, gguf), dtype=options.get("dtype", "float32"))
            return TransformersBackend(converted, None, **options)
        return TransformersBackend(path, gguf, **options)


class VLLMScheme(Scheme):
    usage = "vllm:/DIR or vllm:HUB_ID (in-process vLLM; GPU only)"

    def validate(self, spec: ModelSpec) -> None:
        super().validate(spec)
        self.no_fragment(spec)

    def load(self, spec: ModelSpec, **options: Any) -> ChatBackend:
        from trustflow.models.llm.vllm_backend import VLLMBackend

        return VLLMBackend(spec.target, **options)


for _name, _scheme in (
    ("openai", OpenAIScheme()),
    ("endpoint", EndpointScheme()),
    ("hf", HFScheme()),
    ("pkg", PackagedScheme()),
    ("vllm", VLLMScheme()),
):
    SCHEMES.register(_name)(_scheme)


def local_model(spec: str | ModelSpec) -> tuple[Path, str | None]:
    """(directory, gguf file or None) of a local spec (hf: or pkg:), for servers to load."""
    parsed = spec if isinstance(spec, ModelSpec) else parse_spec(spec)
    handler = SCHEMES.get(parsed.scheme)
    if not isinstance(handler, (HFScheme, PackagedScheme)):
        raise ConfigError(f"{parsed.raw!r} is not a local model: use an hf: or pkg: spec")
    return handler.local(parsed)
