"""The contract every adversarial training method follows, its registry and shared helpers.

A method turns one batch into one loss: ``step(model, x, y, state) -> StepOutput``. The
caller owns ``backward``, gradient clipping, the optimizer and the LR schedule (see
``loop.train_one_epoch``), so the same method runs in a plain loop, under DDP inside a Ray
Train worker, or in a test. After ``optimizer.step()`` the caller calls
``method.after_optimizer_step(model, state)``: FGSM-LAW updates its weight average there,
on the new weights, as the reference implementation does.

Conventions (shared with ``tasks/robustness/perturb.py``):

* inputs are images in [0, 1]; the model normalises them itself (its first layer);
* ``eps`` and step sizes are in that [0, 1] scale (8/255 is the usual CIFAR L∞ budget);
* every adversarial batch is clipped to [0, 1] and lies in the ε-ball of the clean batch;
* random starts draw from ``state.generator`` (a CPU ``torch.Generator``), so a seeded run
  is reproducible on CPU and GPU alike; under DDP give each rank its own seed;
* the model's train/eval mode is restored after every step.

DDP: attacks run on the unwrapped module (``.module`` when present). They only need
gradients with respect to the input, and going through the DDP wrapper would arm its
gradient reducer for a backward that never comes. Forwards whose loss is returned go
through the model as given (the wrapper), so DDP synchronises their gradients.

Options are a pydantic ``Options`` model per method (a subclass of
:class:`TrainingOptions`), registered with the method; ``TRAINING_METHODS.create(spec)`` or
``make_method(name, **options)`` turn an unknown option or a bad value into a
``ConfigError`` that names the method and the option (``registry.validate_options``).
Adding a method is one module in this package with one decorated class::

    class MyOptions(TrainingOptions):
        steps: int = Field(10, ge=1)

    @TRAINING_METHODS.register("mine", options=MyOptions)
    class Mine(TrainingMethod[MyOptions]):
        def step(self, model, x, y, state): ...
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar

import torch
import torch.nn as nn
from pydantic import Field

from trustflow.errors import ConfigError
from trustflow.registry import Entry, Options, Registry

if TYPE_CHECKING:
    from trustflow.tasks.robustness.training.ema import AutoWeightAveraging

AttackMode = Literal["train", "eval"]


# -- options ------------------------------------------------------------------------------


class TrainingOptions(Options):
    """Options every training method accepts; each method subclasses this for its own."""

    eps: float = Field(8 / 255, ge=0.0, le=1.0, description="L∞ budget in the [0, 1] pixel scale")
    # Mode of the model while the attack runs. "train" (the default of the single-step and
    # PGD methods) follows Madry/Rice/Wong: the attack sees the same BatchNorm batch
    # statistics as the update. TRADES defaults to "eval", as its reference code does.
    attack_mode: AttackMode = "train"
    # Methods that do not need clean logits for their loss (PGD-AT, FGSM-RS) compute them
    # only when this is set: one extra forward, no grad, model in eval mode (so BatchNorm
    # running statistics are not touched). Without it their clean accuracy is not reported.
    track_clean: bool = False
    # Gradient-norm clipping the loop applies after backward (None: no clipping).
    max_grad_norm: float | None = Field(None, gt=0.0)


# -- what a step returns and what it carries between steps -------------------------------


@dataclass
class StepOutput:
    """One batch's result. ``loss`` keeps its graph; everything else is detached."""

    loss: torch.Tensor
    logits_clean: torch.Tensor | None
    logits_adv: torch.Tensor | None
    stats: dict[str, float] = field(default_factory=dict)
    # The adversarial batch the loss was computed on (None for standard training).
    x_adv: torch.Tensor | None = None


@dataclass
class TrainState:
    """What persists between steps: counters, the random-start generator, method state.

    ``epoch`` is the epoch being trained (``train_one_epoch`` increments it at the end),
    ``step`` the number of batches done so far over the whole run. ``ema`` is FGSM-LAW's
    auto weight average (evaluate on ``state.ema.model``); ``extra`` holds anything else a
    method needs between ``step`` and ``after_optimizer_step``.
    """

    epoch: int = 0
    step: int = 0
    generator: torch.Generator = field(default_factory=lambda: torch.Generator().manual_seed(0))
    ema: AutoWeightAveraging | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def create(cls, seed: int = 0, epoch: int = 0, step: int = 0) -> TrainState:
        return cls(epoch=epoch, step=step, generator=torch.Generator().manual_seed(int(seed)))

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume (for a checkpoint); tensors only, no modules."""
        return {
            "epoch": self.epoch,
            "step": self.step,
            "generator": self.generator.get_state(),
            "ema": None if self.ema is None else self.ema.state_dict(),
        }

    def load_state_dict(self, sd: Mapping[str, Any]) -> None:
        self.epoch = int(sd["epoch"])
        self.step = int(sd["step"])
        self.generator.set_state(sd["generator"])
        if sd.get("ema") is not None:
            if self.ema is None:
                raise ConfigError(
                    "checkpoint holds a weight average but this state has none: call method.init_state(model) first"
                )
            self.ema.load_state_dict(sd["ema"])


# -- the method contract ------------------------------------------------------------------


O = TypeVar("O", bound=TrainingOptions)  # noqa: E741  (the method's options model)


class TrainingMethod(ABC, Generic[O]):
    """One adversarial training method, registered with its options model; implements ``step``.

    Built by the registry (``TRAINING_METHODS.create(spec)`` / ``make_method``) from validated
    options, kept as ``self.options``."""

    name: ClassVar[str] = ""  # set by the registry decorator

    def __init__(self, options: O) -> None:
        self.options = options

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.options!r})"

    def init_state(self, model: nn.Module, seed: int = 0) -> TrainState:
        """A fresh state for training ``model`` (methods with state, such as FGSM-LAW's
        weight average, override this to create it)."""
        return TrainState.create(seed)

    @abstractmethod
    def step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, state: TrainState) -> StepOutput:
        """The loss on one batch (with its graph); the caller does backward and the update."""

    def after_optimizer_step(self, model: nn.Module, state: TrainState) -> None:
        """Called by the loop after ``optimizer.step()``; default: nothing."""

    # helpers for subclasses

    def _clean_logits_for_stats(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor | None:
        if not self.options.track_clean:
            return None
        m = unwrap(model)
        with torch.no_grad(), model_mode(m, "eval"):
            return m(x).detach()


def _build(entry: Entry[type[TrainingMethod[Any]]], options: Any) -> TrainingMethod[Any]:
    return entry.obj(options)


TRAINING_METHODS: Registry[type[TrainingMethod[Any]]] = Registry(
    "training method", plugins="trustflow.tasks.robustness.training", factory=_build
)


def make_method(spec: str, **options: Any) -> TrainingMethod[Any]:
    """The method a spec (``"pgd_at?steps=7"`` or a bare name) names, ``options`` on top."""
    method: TrainingMethod[Any] = TRAINING_METHODS.create(spec, **options)
    return method


# -- model helpers ------------------------------------------------------------------------


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside DDP / DataParallel wrappers (``.module``), else ``model``."""
    inner = getattr(model, "module", None)
    while isinstance(inner, nn.Module):
        model, inner = inner, getattr(inner, "module", None)
    return model


@contextlib.contextmanager
def model_mode(model: nn.Module, mode: AttackMode) -> Iterator[nn.Module]:
    """Put ``model`` (and its submodules) in train or eval mode; restore each one's mode after."""
    saved = [(m, m.training) for m in model.modules()]
    model.train(mode == "train")
    try:
        yield model
    finally:
        for m, training in saved:
            m.training = training


_HEAD_ATTRS = ("fc", "classifier", "head", "linear", "last_linear")


def _is_leaf(m: nn.Module) -> bool:
    return next(m.children(), None) is None


def find_head(model: nn.Module) -> nn.Module:
    """The classifier module whose *input* is the penultimate features of ``model``.

    Looked up, on the unwrapped model, as: for an ``nn.Sequential``, its last layer
    (descending into it when it is itself a container, e.g. ``Sequential(Normalize,
    resnet)``); for timm-style models exposing ``forward_features``, ``get_classifier()``;
    then the first of the attributes fc / classifier / head / linear / last_linear; then
    the last ``nn.Linear`` registered. Raises ConfigError when none applies.
    """
    m = unwrap(model)
    if isinstance(m, nn.Sequential) and len(m) > 0:
        last = m[-1]
        return last if _is_leaf(last) else find_head(last)
    get_classifier = getattr(m, "get_classifier", None)
    if callable(get_classifier):
        head = get_classifier()
        if isinstance(head, nn.Module) and not isinstance(head, nn.Identity):
            return head if _is_leaf(head) else find_head(head)
    for attr in _HEAD_ATTRS:
        head = getattr(m, attr, None)
        if isinstance(head, nn.Module) and not isinstance(head, nn.Identity):
            return head if _is_leaf(head) else find_head(head)
    linears = [mod for mod in m.modules() if isinstance(mod, nn.Linear)]
    if linears:
        return linears[-1]
    raise ConfigError(
        f"cannot find the classifier head of {type(m).__name__}: no nn.Sequential, get_classifier(), "
        f"{'/'.join(_HEAD_ATTRS)} attribute or nn.Linear; pass feature_module='<name of the module whose output are the features>'"
    )


def features_and_logits(
    model: nn.Module, x: torch.Tensor, feature_module: str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(penultimate features, logits) of ``model`` on ``x`` in one forward pass.

    The forward goes through ``model`` as given (a DDP wrapper included); the features are
    captured by a hook on the unwrapped model: the output of the submodule named
    ``feature_module`` when given, else the input of the classifier head found by
    :func:`find_head` (for an ``nn.Sequential``, the output of everything but the last
    layer; for a timm-style model with ``forward_features``, the pooled pre-logits that its
    classifier receives). Features are returned as the hook saw them (not flattened).
    """
    inner = unwrap(model)
    captured: list[torch.Tensor] = []
    if feature_module is not None:
        try:
            target = inner.get_submodule(feature_module)
        except AttributeError:
            raise ConfigError(
                f"feature_module {feature_module!r} is not a submodule of {type(inner).__name__}"
            ) from None
        handle = target.register_forward_hook(lambda _m, _inp, out: captured.append(out))
    else:
        handle = find_head(inner).register_forward_pre_hook(lambda _m, inp: captured.append(inp[0]))
    try:
        logits = model(x)
    finally:
        handle.remove()
    if not captured or not isinstance(captured[-1], torch.Tensor):
        raise ConfigError(f"the feature hook on {type(inner).__name__} saw no tensor; pass feature_module explicitly")
    # the last call wins: a head applied twice (weight sharing) reports its final input
    return captured[-1], logits


def accuracy_counts(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Number of correct predictions (a 0-dim tensor on the logits' device; no sync)."""
    return (logits.argmax(1) == y).sum()
