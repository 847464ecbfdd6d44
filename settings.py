"""Effective configuration: one pydantic-settings model fed by env vars and an optional YAML file.

Precedence (highest first): explicit arguments, ``TRUSTFLOW_*`` environment variables
(plus the standard ``AWS_*`` / ``PREFECT_API_URL`` names), the YAML file named by
``TRUSTFLOW_CONFIG`` (or ``./trustflow.yaml`` when present), then defaults. Secrets are
``SecretStr`` so they never print: ``masked_dump`` is what ``trustflow config show`` shows.
"""

from __future__ import annotations

import os
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from trustflow.errors import ConfigError

DEFAULT_HOME = ".trustflow"
DEFAULT_BUCKET = "trustflow"


class LLMEndpoint(BaseModel):
    """An OpenAI-compatible chat endpoint (``vllm serve``, ``transformers serve``, a provider)."""

    model_config = ConfigDict(extra="forbid")  # a misspelt nested key is an error, not a no-op

    base_url: str
    model: str
    api_key: SecretStr | None = None
    rpm: float | None = Field(
        default=None, gt=0, description="Requests per minute the endpoint allows (None: no limit)."
    )
    tpm: float | None = Field(
        default=None, gt=0, description="Tokens per minute (prompt + completion; estimated before a call)."
    )
    max_concurrency: int | None = Field(
        default=None, ge=1, description="Ceiling of requests in flight; AIMD adapts below it (None: --concurrency)."
    )
    adaptive: bool = Field(default=True, description="AIMD concurrency (false: a fixed pool of max_concurrency).")
    price_per_1k_prompt: float | None = Field(default=None, ge=0, description="USD per 1,000 prompt tokens.")
    price_per_1k_completion: float | None = Field(default=None, ge=0, description="USD per 1,000 completion tokens.")

    def backend_options(self) -> dict[str, Any]:
        """The OpenAI backend's keyword arguments these settings fix (unset ones left out)."""
        names = ("rpm", "tpm", "max_concurrency", "price_per_1k_prompt", "price_per_1k_completion")
        out: dict[str, Any] = {n: getattr(self, n) for n in names if getattr(self, n) is not None}
        out["adaptive"] = self.adaptive
        return out


class SeaweedFSConfig(BaseModel):
    """Ports and bucket of the locally managed SeaweedFS (``trustflow storage up``)."""

    model_config = ConfigDict(extra="forbid")  # a misspelt nested key is an error, not a no-op

    s3_port: int = 8333
    master_port: int = 9333
    volume_port: int = 8080
    filer_port: int = 8888
    bucket: str = DEFAULT_BUCKET


class StoreConfig(BaseModel):
    """How the artifact store rides out outages of an S3 endpoint (``store.*``)."""

    model_config = ConfigDict(extra="forbid")  # a misspelt nested key is an error, not a no-op

    retry_seconds: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        description=(
            "How long one S3 operation (part/manifest write, read, listing, start-up check) keeps "
            "retrying connection failures, timeouts and 5xx before the run fails; 0: fail at once."
        ),
    )


StageSources = Literal["auto", "always", "never"]


class IngestConfig(BaseModel):
    """How ingestion reaches Ray workers that may not see the driver's disk (``ingest.*``)."""

    model_config = ConfigDict(extra="forbid")

    stage_sources: StageSources = Field(
        default="auto",
        description=(
            "Upload the resolved source into the store (staging/<fingerprint>/) before Ray builds "
            "its parts, so workers read it from there: auto = when Ray is joined by address or has "
            "more than one node; never = workers open the driver's path (one machine, no copy)."
        ),
    )


class PrefectServerConfig(BaseModel):
    """Where ``trustflow server up`` binds the Prefect server (loopback only)."""

    model_config = ConfigDict(extra="forbid")  # a misspelt nested key is an error, not a no-op

    port: int = 4200
    work_pool: str = "trustflow-process"


def _accepted_names(name: str, field: FieldInfo) -> set[str]:
    names = {name}
    if field.alias:
        names.add(field.alias)
    if isinstance(field.validation_alias, str):
        names.add(field.validation_alias)
    elif isinstance(field.validation_alias, AliasChoices):
        names.update(c for c in field.validation_alias.choices if isinstance(c, str))
    return names


def _model_of(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """``(model, is_mapping)`` when a field holds a model or a ``dict[str, model]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    if typing.get_origin(annotation) is dict:
        args = typing.get_args(annotation)
        if len(args) == 2 and isinstance(args[1], type) and issubclass(args[1], BaseModel):
            return args[1], True
    return None, False


def unknown_keys(model: type[BaseModel], data: dict[str, Any], prefix: str = "") -> str | None:
    """The dotted name of the first key in ``data`` that ``model`` does not define, at any depth.

    Why not leave it to pydantic: its error loses the file's name, and a YAML file is where a
    typo (``seaweedfs: {s3_prot: 1}``) is made; the user needs both the file and the key."""
    fields: dict[str, FieldInfo] = {}
    for field_name, info in model.model_fields.items():
        for accepted in _accepted_names(field_name, info):
            fields[accepted] = info
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        found_field = fields.get(str(key))
        if found_field is None:
            return dotted
        sub, mapping = _model_of(found_field.annotation)
        if sub is None or not isinstance(value, dict):
            continue
        items: list[tuple[str, Any]] = list(value.items()) if mapping else [("", value)]
        for name, item in items:
            if isinstance(item, dict):
                found = unknown_keys(sub, item, f"{dotted}.{name}." if mapping else f"{dotted}.")
                if found:
                    return found
    return None


class YamlFileSource(PydanticBaseSettingsSource):
    """Reads the optional YAML config with ``yaml.safe_load`` (never the unsafe loader)."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        self._data = self._load()

    @staticmethod
    def config_path() -> Path | None:
        explicit = os.environ.get("TRUSTFLOW_CONFIG")
        if explicit:
            path = Path(explicit)
            if not path.is_file():
                raise ConfigError(f"TRUSTFLOW_CONFIG={explicit}: file not found")
            return path
        default = Path("trustflow.yaml")
        return default if default.is_file() else None

    def _load(self) -> dict[str, Any]:
        path = self.config_path()
        if path is None:
            return {}
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: top level must be a mapping of settings")
        unknown = unknown_keys(self.settings_cls, data)
        if unknown:
            raise ConfigError(f"{path}: unknown setting {unknown!r} (see docs/operations.md for the settings)")
        return data

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


class Settings(BaseSettings):
    """Everything trustflow needs to find its store, services and models."""

    model_config = SettingsConfigDict(
        env_prefix="TRUSTFLOW_", env_nested_delimiter="__", extra="forbid", populate_by_name=True
    )

    home: Path = Field(default=Path(DEFAULT_HOME), description="Local state: store, service data, pid files.")
    store_url: str | None = Field(
        default=None,
        description="file:///abs/dir or s3://bucket/prefix; default file://<home>/store.",
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("TRUSTFLOW_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
        description="Override for S3-compatible stores (SeaweedFS, MinIO); unset for AWS.",
    )
    s3_region: str = Field(
        default="us-east-1",
        validation_alias=AliasChoices("TRUSTFLOW_S3_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"),
    )
    s3_access_key_id: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("TRUSTFLOW_S3_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID")
    )
    s3_secret_access_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("TRUSTFLOW_S3_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"),
    )
    ray_address: str | None = Field(
        default=None, description="None: start a local Ray; 'auto' or ray://host:port: join."
    )
    ray_num_cpus: int | None = Field(default=None, ge=1, description="CPUs for a local Ray (default: all).")
    prefect_api_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("TRUSTFLOW_PREFECT_API_URL", "PREFECT_API_URL"),
        description="None: ephemeral Prefect; else a Prefect server API URL.",
    )
    llm_endpoints: dict[str, LLMEndpoint] = Field(default_factory=dict)
    seaweedfs: SeaweedFSConfig = Field(default_factory=SeaweedFSConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    prefect_server: PrefectServerConfig = Field(default_factory=PrefectServerConfig)

    @field_validator("store_url")
    @classmethod
    def _check_store_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not (value.startswith("file://") or value.startswith("s3://")):
            raise ValueError("must start with file:// or s3://")
        if value.startswith("s3://") and len(value) <= len("s3://"):
            raise ValueError("s3:// URL needs a bucket: s3://bucket[/prefix]")
        return value.rstrip("/")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, YamlFileSource(settings_cls))

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def effective_store_url(self) -> str:
        return self.store_url or f"file://{self.home_dir / 'store'}"

    def masked_dump(self) -> dict[str, Any]:
        """A JSON-able view with every secret replaced by ``'***'`` (or ``None`` when unset)."""

        def mask(value: Any) -> Any:
            if isinstance(value, SecretStr):
                return "***"
            if isinstance(value, dict):
                return {k: mask(v) for k, v in value.items()}
            if isinstance(value, list):
                return [mask(v) for v in value]
            if isinstance(value, Path):
                return str(value)
            return value

        dumped = {name: getattr(self, name) for name in type(self).model_fields}
        dumped = {k: (v.model_dump() if isinstance(v, BaseModel) else v) for k, v in dumped.items()}
        dumped["llm_endpoints"] = {
            k: {f: getattr(e, f) for f in type(e).model_fields} for k, e in self.llm_endpoints.items()
        }
        out = mask(dumped)
        out["effective_store_url"] = self.effective_store_url
        out["home"] = str(self.home_dir)
        return out


def load_settings(**overrides: Any) -> Settings:
    """Build settings, turning validation errors into one line that names the bad field."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ())) or "settings"
        raise ConfigError(f"invalid setting {field}: {first.get('msg')}") from None
