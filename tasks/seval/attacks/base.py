"""What every S-Eval adversarial instruction attack shares.

An attack turns one base (risk) prompt into one attack prompt. Each attack is one class in
one file, registered with ``@ATTACKS.register("name")`` in :data:`ATTACKS` (every module of this
package is imported on first lookup); its options are a pydantic model (``Options``) and its
templates, in Chinese and English, live next to it.

Determinism: :meth:`Attack.apply` draws every choice (template, split points, shift, ...)
from a ``random.Random`` seeded by SHA-256 of ``(attack name, base_id, seed)``, never from
Python's ``hash()``, so the same inputs give the same text in every process and on every
machine. Different seeds (or base ids) can pick different templates.

LLM-rewrite mode is optional: attacks with ``supports_rewrite = True`` implement
:meth:`Attack.rewrite`, which asks any object with a ``chat(messages, **params) -> str`` method
(:class:`ChatLLM`) to produce the attack text. The rule-based :meth:`Attack.apply` never needs
an LLM.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, computed_field, field_validator

from trustflow.data.schemas import VersionedSchema
from trustflow.errors import ConfigError, InputError, TrustflowError
from trustflow.registry import Options, Registry, validate_options

Lang = Literal["zh", "en"]
LANGS: tuple[Lang, ...] = ("zh", "en")

RNG_NAMESPACE = "trustflow.seval.attacks"


class AttackError(TrustflowError):
    """An attack could not produce a prompt (e.g. an LLM rewrite came back empty)."""


@runtime_checkable
class ChatLLM(Protocol):
    """The only thing an LLM rewrite needs: ``chat(messages, **params) -> reply text``.

    ``messages`` are OpenAI-style ``{"role": "system" | "user" | "assistant", "content": str}``.
    """

    def chat(self, messages: list[dict[str, str]], **params: Any) -> str: ...


class AttackPrompt(BaseModel):
    """One attack prompt: which base prompt, which attack and template, and the text."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_id: str
    attack: str
    template_id: str  # stable id of the template used, e.g. "role_play.dev_mode.v1"
    seed: int
    lang: Lang
    prompt: str  # the attack prompt to send to the model under test
    # How the base prompt appears in `prompt` when it is not embedded verbatim: the
    # ciphertext (instruction_encryption) or the code block (code_injection); else None.
    payload: str | None = None
    # instruction_encryption only: "base64", "url" or "caesar:<shift>"; decode(payload, encoding)
    # gives the base prompt back exactly.
    encoding: str | None = None
    rewritten: bool = False  # produced by an LLM rewrite instead of a rule-based template

    @computed_field  # type: ignore[prop-decorator]
    @property
    def attack_id(self) -> str:
        """Stable row id: :func:`attack_id_for` of base_id, attack, template_id and seed."""
        return attack_id_for(self.base_id, self.attack, self.template_id, self.seed)


def attack_id_for(base_id: str, attack: str, template_id: str, seed: int) -> str:
    """Stable id of an attack row: SHA-256 of base_id, attack, template_id and seed (32 hex)."""
    material = "\x1f".join([base_id, attack, template_id, str(int(seed))])
    return hashlib.sha256(material.encode("utf-8")).hexdigest()[:32]


def stable_rng(*parts: object) -> random.Random:
    """A ``random.Random`` seeded from SHA-256 of the parts: same parts, same stream, anywhere."""
    material = "\x1f".join([RNG_NAMESPACE, *(str(p) for p in parts)])
    digest = hashlib.sha256(material.encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


@dataclass(frozen=True)
class Template:
    """One template in both languages; ``{name}`` fields are filled by :func:`fill`."""

    id: str
    zh: str
    en: str

    def text(self, lang: Lang) -> str:
        return self.zh if lang == "zh" else self.en


_FIELD = re.compile(r"\{([a-z_]+)\}")


def fill(template: str, **values: object) -> str:
    """Replace ``{name}`` fields in one pass (values are never re-scanned, so a prompt that
    itself contains ``{prompt}`` or braces is inserted literally). Unknown fields stay."""

    def sub(m: re.Match[str]) -> str:
        key = m.group(1)
        return str(values[key]) if key in values else m.group(0)

    return _FIELD.sub(sub, template)


@dataclass(frozen=True)
class Rendered:
    """What an attack's :meth:`Attack.build` returns; :meth:`Attack.apply` adds the ids."""

    template_id: str
    prompt: str
    payload: str | None = None
    encoding: str | None = None


class AttackOptions(Options):
    """Options every attack accepts; each attack subclasses this for its own options."""

    # Restrict the seed-driven choice to these template ids (None: all of the attack's templates).
    templates: tuple[str, ...] | None = None

    @field_validator("templates", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:  # "a,b" from a spec string
        return tuple(v.strip() for v in value.split(",") if v.strip()) if isinstance(value, str) else value


class Attack:
    """One adversarial instruction attack. Subclasses set ``TEMPLATES`` and implement ``build``."""

    name: ClassVar[str] = ""  # set by ``@ATTACKS.register``
    Options: ClassVar[type[AttackOptions]] = AttackOptions
    TEMPLATES: ClassVar[tuple[Template, ...]] = ()
    supports_rewrite: ClassVar[bool] = False

    def __init__(self, options: AttackOptions | Mapping[str, Any] | None = None, **overrides: Any) -> None:
        if isinstance(options, AttackOptions):
            merged: dict[str, Any] = {**options.model_dump(exclude_unset=True), **overrides}
        else:
            merged = {**(options or {}), **overrides}
        self.options = validate_options(f"S-Eval attack {self.name!r}", self.Options, merged)
        self._templates = self._select_templates()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Check the templates once, when the attack's class is defined."""
        super().__init_subclass__(**kwargs)
        ids = [t.id for t in cls.TEMPLATES]
        if not ids:
            raise ConfigError(f"attack {cls.__name__} defines no templates")
        if len(set(ids)) != len(ids):
            raise ConfigError(f"attack {cls.__name__} has duplicate template ids")
        for t in cls.TEMPLATES:
            if not t.zh.strip() or not t.en.strip():
                raise ConfigError(f"attack {cls.__name__}: template {t.id!r} lacks a zh or en text")

    # -- templates -------------------------------------------------------------------------

    @classmethod
    def template_ids(cls) -> list[str]:
        return [t.id for t in cls.TEMPLATES]

    def _select_templates(self) -> tuple[Template, ...]:
        wanted = self.options.templates
        if wanted is None:
            return self.TEMPLATES
        known = {t.id: t for t in self.TEMPLATES}
        unknown = [w for w in wanted if w not in known]
        if unknown or not wanted:
            raise ConfigError(
                f"attack {self.name!r}: unknown template(s) {', '.join(map(repr, unknown)) or '(none given)'}; "
                f"known: {', '.join(known)}"
            )
        return tuple(known[w] for w in wanted)

    @property
    def templates(self) -> tuple[Template, ...]:
        """The templates this instance chooses from (after the ``templates`` option)."""
        return self._templates

    def pick(self, rng: random.Random) -> Template:
        return rng.choice(self._templates)

    # -- rule-based mode ---------------------------------------------------------------------

    def build(self, prompt: str, lang: Lang, rng: random.Random) -> Rendered:
        """Make the attack text for ``prompt`` in ``lang``, drawing every choice from ``rng``.

        Default: one template picked by ``rng`` with ``{prompt}`` filled in; attacks that
        transform the prompt itself (encryption, code injection, ...) override this.
        """
        t = self.pick(rng)
        return Rendered(t.id, fill(t.text(lang), prompt=prompt))

    def rng(self, base_id: str, seed: int) -> random.Random:
        return stable_rng(self.name, base_id, int(seed))

    def apply(self, base_id: str, prompt: str, lang: Lang, seed: int) -> AttackPrompt:
        """The attack prompt for one base prompt; same inputs, same output."""
        _check_inputs(base_id, prompt, lang)
        out = self.build(prompt, lang, self.rng(base_id, seed))
        return AttackPrompt(
            base_id=base_id,
            attack=self.name,
            template_id=out.template_id,
            seed=int(seed),
            lang=lang,
            prompt=out.prompt,
            payload=out.payload,
            encoding=out.encoding,
        )

    # -- LLM-rewrite mode (optional) ---------------------------------------------------------

    def rewrite(self, prompt: str, lang: Lang, llm: ChatLLM, *, seed: int = 0, **params: Any) -> str:
        """Have ``llm`` write the attack text for ``prompt``; ``params`` go to ``llm.chat``.

        Only attacks with ``supports_rewrite = True`` implement this.
        """
        able = ", ".join(n for n in ATTACKS.names() if ATTACKS.get(n).supports_rewrite) or "none"
        raise ConfigError(f"attack {self.name!r} has no LLM rewrite mode; attacks that have one: {able}")

    def apply_rewrite(
        self, base_id: str, prompt: str, lang: Lang, seed: int, llm: ChatLLM, **params: Any
    ) -> AttackPrompt:
        """Like :meth:`apply`, but the text comes from :meth:`rewrite` (template ``llm_rewrite.v1``)."""
        _check_inputs(base_id, prompt, lang)
        if not isinstance(llm, ChatLLM):
            raise ConfigError(f"llm must have a chat(messages, **params) method, got {type(llm).__name__}")
        text = self.rewrite(prompt, lang, llm, seed=int(seed), **params)
        return AttackPrompt(
            base_id=base_id,
            attack=self.name,
            template_id="llm_rewrite.v1",
            seed=int(seed),
            lang=lang,
            prompt=text,
            rewritten=True,
        )


def ask_llm(llm: ChatLLM, system: str, user: str, what: str, **params: Any) -> str:
    """One chat call for a rewrite; the reply is stripped and must not be empty."""
    reply = llm.chat([{"role": "system", "content": system}, {"role": "user", "content": user}], **params)
    if not isinstance(reply, str) or not reply.strip():
        raise AttackError(f"{what}: the LLM returned an empty reply")
    return reply.strip()


def _check_inputs(base_id: str, prompt: str, lang: str) -> None:
    if lang not in LANGS:
        raise InputError(f"base prompt {base_id!r}: lang must be 'zh' or 'en', got {lang!r}")
    if not isinstance(prompt, str) or not prompt.strip():
        raise InputError(f"base prompt {base_id!r}: the prompt is empty")


ATTACKS: Registry[type[Attack]] = Registry(
    "S-Eval attack", plugins="trustflow.tasks.seval.attacks", factory=lambda entry, options: entry.obj(options)
)


def get_attack(name: str, options: AttackOptions | Mapping[str, Any] | None = None, **overrides: Any) -> Attack:
    """An instance of the attack named ``name`` (ConfigError listing the known ones if absent)."""
    return ATTACKS.get(name)(options, **overrides)


def pick_cuts(rng: random.Random, text: str, pieces: int, prefer: Sequence[int] = ()) -> list[str]:
    """Split ``text`` into ``pieces`` non-empty parts at random points, cutting only at the
    ``prefer`` positions (e.g. after spaces) when there are enough of them. Joining the parts
    gives ``text`` back exactly."""
    pieces = max(1, min(pieces, len(text)))
    if pieces == 1:
        return [text]
    candidates = sorted({i for i in prefer if 0 < i < len(text)})
    if len(candidates) < pieces - 1:
        candidates = list(range(1, len(text)))
    cuts = sorted(rng.sample(candidates, pieces - 1))
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


SEVAL_ATTACK_PROMPTS = VersionedSchema(
    "seval_attack_prompts",
    1,
    pa.schema(
        [
            pa.field("attack_id", pa.string(), nullable=False),  # attack_id_for(base_id, attack, template_id, seed)
            pa.field("base_id", pa.string(), nullable=False),  # the base prompt's prompt_id
            pa.field("attack", pa.string(), nullable=False),  # registry name, = S-Eval's ext.category
            pa.field("template_id", pa.string(), nullable=False),
            pa.field("seed", pa.int64(), nullable=False),
            pa.field("lang", pa.string(), nullable=False),  # zh | en
            pa.field("prompt", pa.string(), nullable=False),  # the attack prompt
            pa.field("payload", pa.string()),  # ciphertext / code block, else null
            pa.field("encoding", pa.string()),  # instruction_encryption: base64 | url | caesar:<n>
        ]
    ),
)
