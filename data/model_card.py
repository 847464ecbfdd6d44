"""Model cards: the YAML a team drops under ``models/`` in the bucket to get a model evaluated.

Why a card and not the checkpoint alone: a checkpoint does not say what it is (an LLM
endpoint? a classifier for which dataset?) nor which evaluations a team wants. The card
names the model and says how to reach it; the storage-event trigger runs
``evaluate_model_card`` on every new or changed card (see docs/operations.md).

```yaml
name: qwen-1.5b-chat            # leaderboard label (letters, digits, . _ -)
kind: llm                       # llm | classifier | text-classifier | speech-recognizer
model: openai:http://gpu-box:8000/v1?model=Qwen/Qwen2.5-1.5B-Instruct   # kind llm: an LLM spec
# kind classifier: a checkpoint key relative to the store root (ckpt: or torchscript: file),
# or any classifier spec the robustness flow accepts (run:<training run>, a registry name)
# checkpoint: models/resnet18-pgd/final.pt
# checkpoint_format: ckpt      # ckpt | torchscript
seval:                          # kind llm; omit to use the defaults below
  suite: auto
  critic: default
  per_dimension: 1
  attacks_per_base: 1
  max_tokens: 96
robustness:                     # kind classifier
  dataset: digits
  attacks: [clean, fgsm, pgd]
  eps: 0.1
  limit: 256
# kind text-classifier (issue 17): model run:<fairness_train run id>, or checkpoint: a model.pt
# that fairness_train wrote (copied anywhere in the store); gets the fairness evaluation
fairness:
  datasets: []                  # ingested fairness dataset ids; empty: the model's own
  eec: generated                # the template set for flip rates (an eec dataset id) or none
  eec_pairs: 150
  limit: 1000                   # test texts per dataset
  bootstrap: 200
# kind speech-recognizer (issue 19): model run:<asr_train run id>; gets asr_evaluate
asr:
  datasets: [espeak-…]          # ingested speech dataset ids, scored clean and under each shift
  clean_only: []                # speech dataset ids scored as they are (real recordings)
  shifts: ["noise?snr_db=10", reverb, telephone]
  limit: 200                    # utterances per dataset
  shard: 16                     # utterances per Ray task / resumable part
```
Loaded with ``yaml.safe_load``; unknown fields are errors naming the card and the field.

A card is untrusted input: whoever can write to the bucket can drop one, and the
storage-event trigger acts on it unattended. So what a card may name is an allow-list
(:func:`check_card_allowed`, docs/operations.md "Model cards are untrusted"), checked before
anything is loaded, read or contacted:

- ``checkpoint``: a key inside the store (``confine_key``: no ``..``, absolute key, symlink out);
- classifier ``model``: ``run:<training run>[/best|/final]`` or a registered architecture
  (``small_cnn``, ``wide_resnet?depth=16``, ``timm:resnet18``) with no file option (``weights=``);
  never ``ckpt:``/``torchscript:`` or a file path;
- LLM ``model`` (and a critic's model): ``pkg:<packaged model>`` or ``endpoint:<name>`` with
  ``name`` a key of the operator's ``llm_endpoints`` setting; never ``openai:URL``, ``hf:``/``vllm:``
  paths or hub ids;
- ``seval.suite``: ``auto``, ``seed-suite`` or a suite/dataset id in the store (a plain name);
- text-classifier ``model``: ``run:<fairness_train run id>``; ``fairness.datasets`` and
  ``fairness.eec``: plain names (dataset ids in the store);
- speech-recognizer ``model``: ``run:<asr_train run id>``; ``asr.datasets`` / ``asr.clean_only``:
  plain names; ``asr.shifts``: speech-shift specs (registry names with plain options);
- ``robustness.dataset``: ``digits`` (every other dataset kind reads a local path);
  attacks and corruptions: plain registry names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from trustflow.data.store.location import confine_key
from trustflow.errors import InputError


class SevalRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    suite: str = "auto"
    critic: str = "default"
    langs: list[str] = Field(default_factory=lambda: ["zh", "en"])
    per_dimension: int = Field(default=1, ge=1)
    attacks_per_base: int = Field(default=1, ge=0)
    max_tokens: int = Field(default=96, ge=1)


class RobustnessRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: str = "digits"
    attacks: list[str] = Field(default_factory=lambda: ["clean", "fgsm", "pgd"])
    eps: float = Field(default=8 / 255, gt=0)
    corruptions: list[str] = Field(default_factory=list)
    limit: int | None = Field(default=None, ge=1)


class FairnessRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    datasets: list[str] = Field(default_factory=list)
    eec: str = "generated"
    eec_pairs: int = Field(default=150, ge=1)
    limit: int | None = Field(default=1000, ge=4)
    bootstrap: int = Field(default=200, ge=1)


class AsrRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    datasets: list[str] = Field(default_factory=list)
    clean_only: list[str] = Field(default_factory=list)
    shifts: list[str] = Field(default_factory=lambda: ["noise?snr_db=10", "reverb", "telephone"])
    limit: int | None = Field(default=200, ge=1)
    shard: int = Field(default=16, ge=1)

    @model_validator(mode="after")
    def _some_data(self) -> AsrRequest:
        if not self.datasets and not self.clean_only:
            raise ValueError("asr needs 'datasets' or 'clean_only' (ingested speech dataset ids)")
        return self


class ModelCard(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")
    kind: Literal["llm", "classifier", "text-classifier", "speech-recognizer"]
    model: str | None = None
    checkpoint: str | None = None
    checkpoint_format: Literal["ckpt", "torchscript"] = "ckpt"
    seval: SevalRequest | None = None
    robustness: RobustnessRequest | None = None
    fairness: FairnessRequest | None = None
    asr: AsrRequest | None = None

    @model_validator(mode="after")
    def _check_kind(self) -> ModelCard:
        if self.fairness is not None and self.kind != "text-classifier":
            raise ValueError("'fairness' applies to kind text-classifier only")
        if self.asr is not None and self.kind != "speech-recognizer":
            raise ValueError("'asr' applies to kind speech-recognizer only")
        if self.kind == "speech-recognizer":
            if not self.model or self.checkpoint:
                raise ValueError("kind speech-recognizer needs 'model' (run:<asr_train run>) and no 'checkpoint'")
            if self.asr is None:
                raise ValueError("kind speech-recognizer needs 'asr' with the speech datasets to score")
            if self.seval is not None or self.robustness is not None:
                raise ValueError("kind speech-recognizer takes 'asr' options only")
        elif self.kind == "text-classifier":
            if bool(self.model) == bool(self.checkpoint):
                raise ValueError(
                    "kind text-classifier needs exactly one of 'model' (run:<fairness_train run>) or "
                    "'checkpoint' (a fairness_train model.pt in the store)"
                )
            if self.seval is not None or self.robustness is not None:
                raise ValueError("kind text-classifier takes 'fairness' options only")
            self.fairness = self.fairness or FairnessRequest()
        elif self.kind == "llm":
            if not self.model:
                raise ValueError(
                    "kind llm needs 'model' (an LLM spec such as openai:URL?model=NAME or pkg:smollm2-135m)"
                )
            if self.robustness is not None:
                raise ValueError("'robustness' applies to kind classifier only")
            self.seval = self.seval or SevalRequest()
        else:
            if bool(self.model) == bool(self.checkpoint):
                raise ValueError(
                    "kind classifier needs exactly one of 'model' (a classifier spec) or 'checkpoint' (a store key)"
                )
            if self.seval is not None:
                raise ValueError("'seval' applies to kind llm only")
            self.robustness = self.robustness or RobustnessRequest()
        return self


_PLAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=-]{0,199}$")  # a store name / registry name
_SPEC_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_OPTION = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=[A-Za-z0-9_.+-]*$")
CARD_LLM_SCHEMES = ("pkg", "endpoint")
CLASSIFIER_FILE_SCHEMES = ("ckpt", "torchscript")
CLASSIFIER_FILE_OPTIONS = ("weights",)  # options whose value is a local file
RUN_MODELS = ("best", "final")
CHECKPOINT_FILE_SUFFIXES = (".pt", ".pth", ".ckpt", ".ts", ".torchscript")  # a bare name here is a file path


class CardNotAllowed(ValueError):
    """A card names something outside the allow-list; ``field`` is the dotted card field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _split_spec(spec: str) -> tuple[str, str | None, list[str]]:
    """``name[:target][?k=v&k=v]`` → (name, target, options), without interpreting them."""
    head, _, query = spec.partition("?")
    name, sep, target = head.partition(":")
    return name, (target if sep else None), [o for o in query.split("&")] if query else []


def check_llm_spec(field: str, spec: str, endpoints: Iterable[str]) -> None:
    """An LLM a card may name: ``pkg:NAME`` or ``endpoint:NAME`` with NAME a configured endpoint."""
    allowed = sorted(endpoints)
    scheme, _, target = spec.strip().partition(":")
    if scheme not in CARD_LLM_SCHEMES or not _SPEC_NAME.match(target):
        raise CardNotAllowed(
            field,
            f"{spec!r} is not allowed in a model card: use pkg:<packaged model> or endpoint:<name> with a name "
            f"from the llm_endpoints setting ({', '.join(allowed) or 'none configured'}); URLs and local paths "
            "are refused because anyone who can write to the bucket can write a card",
        )
    if scheme == "endpoint" and target not in allowed:
        raise CardNotAllowed(
            field,
            f"endpoint {target!r} is not in the llm_endpoints setting ({', '.join(allowed) or 'none configured'})",
        )


def check_classifier_spec(field: str, spec: str) -> None:
    """A classifier a card may name: ``run:<id>[/best|/final]`` or an architecture without file options."""
    text = spec.strip()
    name, target, options = _split_spec(text)
    if name == "run" and target is not None and not options:
        run_id, _, which = target.partition("/")
        if _PLAIN_NAME.match(run_id) and which in ("", *RUN_MODELS):
            return
        raise CardNotAllowed(field, f"{spec!r}: use run:<training run id>[/best|/final]")
    if name in CLASSIFIER_FILE_SCHEMES or name.lower().endswith(CHECKPOINT_FILE_SUFFIXES):
        raise CardNotAllowed(
            field, f"{spec!r}: a card cannot load a file; put the checkpoint in the store and name it in 'checkpoint'"
        )
    bad_target = target is not None and not _SPEC_NAME.match(target)
    bad_option = next(
        (o for o in options if not _OPTION.match(o) or o.partition("=")[0] in CLASSIFIER_FILE_OPTIONS), None
    )
    if not _SPEC_NAME.match(name) or bad_target or bad_option is not None:
        what = f"option {bad_option!r}" if bad_option is not None else "a file path"
        raise CardNotAllowed(
            field,
            f"{spec!r}: {what} is not allowed in a model card; use a registered architecture "
            "(e.g. small_cnn, wide_resnet?depth=16), run:<training run> or a 'checkpoint' key in the store",
        )


def check_critic_spec(field: str, spec: str, endpoints: Iterable[str]) -> None:
    """A critic a card may name: a registered critic, its model (if any) an allowed LLM."""
    name, target, options = _split_spec(spec.strip())
    if not _SPEC_NAME.match(name):
        raise CardNotAllowed(field, f"{spec!r} is not a critic name")
    bad = next((o for o in options if not _OPTION.match(o)), None)
    if bad is not None:
        raise CardNotAllowed(field, f"{spec!r}: option {bad!r} is not allowed in a model card")
    if target is not None:
        check_llm_spec(field, target, endpoints)


def _plain_spec(text: str) -> bool:
    """``name`` or ``name?k=v&…`` with plain names and values (no paths, no targets)."""
    name, _, query = text.partition("?")
    return bool(_SPEC_NAME.match(name)) and all(_OPTION.match(o) for o in query.split("&") if query)


def check_card_allowed(card: ModelCard, endpoints: Iterable[str]) -> None:
    """Raise ``CardNotAllowed`` naming the field unless everything ``card`` names is on the allow-list."""
    endpoints = list(endpoints)
    if card.checkpoint is not None:
        try:
            confine_key(card.checkpoint)
        except InputError as exc:
            raise CardNotAllowed("checkpoint", str(exc)) from None
    if card.model is not None:
        if card.kind == "llm":
            check_llm_spec("model", card.model, endpoints)
        elif card.kind in ("text-classifier", "speech-recognizer"):
            run = card.model.removeprefix("run:")
            flow = "fairness_train" if card.kind == "text-classifier" else "asr_train"
            if not card.model.startswith("run:") or not _SPEC_NAME.match(run):
                raise CardNotAllowed("model", f"{card.model!r}: a {card.kind} card names run:<{flow} run id>")
        else:
            check_classifier_spec("model", card.model)
    if card.seval is not None:
        if not _PLAIN_NAME.match(card.seval.suite):
            raise CardNotAllowed(
                "seval.suite", f"{card.seval.suite!r}: use auto, seed-suite or a suite id in the store"
            )
        check_critic_spec("seval.critic", card.seval.critic, endpoints)
    if card.fairness is not None:
        names = [("fairness.datasets", d) for d in card.fairness.datasets] + [("fairness.eec", card.fairness.eec)]
        wrong = next(((f, v) for f, v in names if not _PLAIN_NAME.match(v)), None)
        if wrong is not None:
            raise CardNotAllowed(wrong[0], f"{wrong[1]!r}: name a dataset id in the store")
    if card.asr is not None:
        names = [("asr.datasets", d) for d in card.asr.datasets] + [("asr.clean_only", d) for d in card.asr.clean_only]
        wrong = next(((f, v) for f, v in names if not _PLAIN_NAME.match(v)), None)
        if wrong is not None:
            raise CardNotAllowed(wrong[0], f"{wrong[1]!r}: name a dataset id in the store")
        bad = next((v for v in card.asr.shifts if not _plain_spec(v)), None)
        if bad is not None:
            raise CardNotAllowed("asr.shifts", f"{bad!r} is not a speech-shift name with plain options")
    if card.robustness is not None:
        req = card.robustness
        if req.dataset != "digits":
            raise CardNotAllowed(
                "robustness.dataset",
                f"{req.dataset!r}: a model card can only use digits (other datasets read local paths)",
            )
        for group, values in (("attacks", req.attacks), ("corruptions", req.corruptions)):
            bad = next((v for v in values if not _SPEC_NAME.match(v)), None)
            if bad is not None:
                raise CardNotAllowed(f"robustness.{group}", f"{bad!r} is not a plain {group[:-1]} name")


def configured_endpoints() -> list[str]:
    """Names of the ``llm_endpoints`` setting: the only remote LLMs a card may reach."""
    from trustflow.settings import load_settings

    return sorted(load_settings().llm_endpoints)


def parse_model_card(text: str | bytes, where: str, endpoints: Iterable[str] | None = None) -> ModelCard:
    """Validate a card and check it against the allow-list; errors name ``where`` (the object
    key) and the offending field. ``endpoints``: the allowed ``endpoint:`` names (default: the
    configured ``llm_endpoints``)."""
    try:
        doc: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"{where}: not valid YAML ({exc})") from None
    if not isinstance(doc, dict):
        raise InputError(f"{where}: a model card is a YAML mapping (name, kind, model | checkpoint, …)")
    try:
        card = ModelCard.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "card"
        raise InputError(f"{where}: field {field!r}: {first['msg']}") from None
    try:
        check_card_allowed(card, configured_endpoints() if endpoints is None else endpoints)
    except CardNotAllowed as exc:
        raise InputError(f"{where}: field {exc.field!r}: {exc}") from None
    return card
