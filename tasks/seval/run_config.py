"""The declarative S-Eval run file (``trustflow seval run --config run.yaml``).

One YAML document: ``targets``, ``critic``, ``suite``, ``limits``, ``gate`` and a few
run-level keys; every key maps onto one ``seval run`` option (:data:`OPTION_PATHS`), so the
file and the command line are the same run. Read with ``yaml.safe_load``; unknown keys are
refused and every error names its key path (``suite.limit``, ``gate.max_asr``), because a
typo in a CI file must fail the job, not silently change what is measured.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from trustflow.errors import ConfigError
from trustflow.tasks.seval.gate import GateConfig, validation_message

Lang = Literal["zh", "en"]
LANGS: tuple[Lang, ...] = ("zh", "en")


class SuiteBlock(BaseModel):
    """Which prompts: ``seval run --suite/--langs/--limit/--attacks/--attacks-per-base``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="auto", description="auto | seed-suite | an ingested S-Eval dataset id")
    langs: list[Lang] = Field(default_factory=lambda: list(LANGS), min_length=1)
    limit: int = Field(default=1, ge=1, description="base prompts per (language, dimension)")
    attacks: list[str] | None = Field(default=None, description="attack names (default: all)")
    attacks_per_base: int | None = Field(default=2, ge=0, description="attack variants kept per base prompt")
    seed: int = 0


class LimitsBlock(BaseModel):
    """How much and how fast: ``--max-tokens/--batch-size/--actors/--concurrency/--max-rationales``."""

    model_config = ConfigDict(extra="forbid")

    max_tokens: int = Field(default=96, ge=1)
    batch_size: int = Field(default=8, ge=1)
    actors: int = Field(default=1, ge=1)
    concurrency: int = Field(default=8, ge=1)
    max_rationales: int = Field(default=200, ge=0)
    cost_limit: float | None = Field(default=None, gt=0, description="USD this invocation may spend on targets")
    token_limit: int | None = Field(default=None, ge=1, description="tokens this invocation may spend on targets")


class RunConfig(BaseModel):
    """A whole ``seval run``: what to evaluate, with which critic, on which suite, how fast,
    and (optionally) the release gate checked once the metrics are written."""

    model_config = ConfigDict(extra="forbid")

    targets: Annotated[list[str], Field(min_length=1)]
    aliases: dict[str, str] = Field(default_factory=dict, description="NAME: SPEC shown as NAME in tables")
    critic: str = "default"
    suite: SuiteBlock = Field(default_factory=SuiteBlock)
    limits: LimitsBlock = Field(default_factory=LimitsBlock)
    rationale_model: str | None = None
    run_id: str | None = None
    cache: bool = Field(
        default=True, description="look chat calls up in the cross-run LLM response cache (false: --no-cache)"
    )
    gate: GateConfig | None = None

    def flow_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the ``seval_evaluate`` flow."""
        rationale = self.rationale_model
        return {
            "targets": list(self.targets),
            "critic": self.critic,
            "suite": self.suite.name,
            "langs": list(self.suite.langs),
            "per_dimension": self.suite.limit,
            "attacks": self.suite.attacks,
            "attacks_per_base": self.suite.attacks_per_base,
            "seed": self.suite.seed,
            "max_tokens": self.limits.max_tokens,
            "batch_size": self.limits.batch_size,
            "actors": self.limits.actors,
            "concurrency": self.limits.concurrency,
            "run_id": self.run_id,
            "rationale_model": None if rationale is None or rationale.lower() in ("", "none") else rationale,
            "max_rationales": self.limits.max_rationales,
            "cache": self.cache,
            "cost_limit": self.limits.cost_limit,
            "token_limit": self.limits.token_limit,
        }

    def alias_options(self) -> list[str]:
        """The aliases as ``--alias NAME=SPEC`` values (checked like the option)."""
        return [f"{name}={spec}" for name, spec in self.aliases.items()]


# `seval run` option (its Python parameter name) → key path in the run file
OPTION_PATHS: dict[str, tuple[str, ...]] = {
    "targets": ("targets",),
    "critic": ("critic",),
    "suite": ("suite", "name"),
    "langs": ("suite", "langs"),
    "limit": ("suite", "limit"),
    "attacks": ("suite", "attacks"),
    "attacks_per_base": ("suite", "attacks_per_base"),
    "max_tokens": ("limits", "max_tokens"),
    "batch_size": ("limits", "batch_size"),
    "actors": ("limits", "actors"),
    "concurrency": ("limits", "concurrency"),
    "max_rationales": ("limits", "max_rationales"),
    "cost_limit": ("limits", "cost_limit"),
    "token_limit": ("limits", "token_limit"),
    "run_id": ("run_id",),
    "rationale_model": ("rationale_model",),
    "alias": ("aliases",),
    "cache": ("cache",),
}


def read_run_file(path: Path) -> dict[str, Any]:
    """The run file as a mapping (``yaml.safe_load``), or a ``ConfigError`` naming the file."""
    if not path.is_file():
        raise ConfigError(f"--config {path}: file not found")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: a run file is a YAML mapping (targets, critic, suite, limits, gate)")
    return doc


def with_overrides(doc: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``doc`` with the command-line options in ``overrides`` (by parameter name) set at
    their key paths: an option given on the command line wins over the file."""
    out: dict[str, Any] = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in doc.items()}
    for option, value in overrides.items():
        *parents, leaf = OPTION_PATHS[option]
        node = out
        for key in parents:
            child = node.get(key)
            if not isinstance(child, dict):
                child = {}
                node[key] = child
            node = child
        node[leaf] = value
    return out


def run_config(doc: Mapping[str, Any], where: str) -> RunConfig:
    """``RunConfig`` from a mapping, or one ``ConfigError`` naming each bad key path."""
    try:
        return RunConfig.model_validate(dict(doc))
    except ValidationError as exc:
        raise ConfigError(validation_message(where, exc)) from None
