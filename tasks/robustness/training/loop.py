"""One epoch of adversarial training in a single process, and the LR schedules.

``train_one_epoch`` is what a Ray Train worker calls once per epoch: it works the same on
a plain model and on a DDP-wrapped one (the method unwraps ``.module`` only where it must:
for attacks and feature hooks). It moves each batch to ``device``, asks the method for the
loss, does backward, optional gradient clipping (``method.options.max_grad_norm``),
``optimizer.step()``, ``method.after_optimizer_step`` and ``scheduler_step()``, and
accumulates metrics on the device (one host sync at the end of the epoch, plus whatever the
method's float stats cost).

Schedules are functions of the fractional epoch ``t`` (epoch + batch / batches per epoch)
returning the LR; :class:`PerStepLR` applies one after every optimizer step and can be
checkpointed. ``lr_schedule_piecewise`` is FGSM-LAW's (×0.1 at 99/110 and 104/110 of
training, as in its 110-epoch CIFAR runs); ``lr_schedule_cyclic`` is the one-cycle
triangle of Wong et al. (0 → peak at ``peak_frac`` → 0).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
import torch.nn as nn

from trustflow.errors import ConfigError
from trustflow.tasks.robustness.training.base import TrainingMethod, TrainState, accuracy_counts

Schedule = Callable[[float], float]
# An extra objective added to every method's loss (e.g. the fingerprint's anti-overwriting
# term, tasks/provenance/train.py): ``(model, x, y, state) -> (loss, stats)``. It composes
# with any method instead of forking one.
ExtraLoss = Callable[[nn.Module, torch.Tensor, torch.Tensor, TrainState], tuple[torch.Tensor, dict[str, float]]]

_X_KEYS = ("image", "images", "x", "pixel_values", "input")
_Y_KEYS = ("label", "labels", "y", "target", "targets")


def lr_schedule_piecewise(
    epochs: int, base_lr: float, milestones_frac: Sequence[float] = (99 / 110, 104 / 110), gamma: float = 0.1
) -> Schedule:
    """LR = base_lr · gamma^(number of milestones passed), milestones at frac × epochs."""
    milestones = sorted(float(f) * epochs for f in milestones_frac)

    def lr(t: float) -> float:
        return base_lr * gamma ** sum(1 for m in milestones if t >= m)

    return lr


def lr_schedule_cyclic(
    epochs: int, base_lr: float, peak_frac: float = 0.4, start_lr: float = 0.0, final_lr: float = 0.0
) -> Schedule:
    """One cycle: linear from ``start_lr`` up to ``base_lr`` at ``peak_frac`` × epochs, then
    linear down to ``final_lr`` at the end (Wong et al.'s cyclic schedule)."""
    peak = max(1e-12, peak_frac * epochs)

    def lr(t: float) -> float:
        if t <= peak:
            return start_lr + (base_lr - start_lr) * t / peak
        if t >= epochs:
            return final_lr
        return base_lr + (final_lr - base_lr) * (t - peak) / max(1e-12, epochs - peak)

    return lr


def lr_schedule(kind: str, epochs: int, base_lr: float, **options: Any) -> Schedule:
    """``kind`` "piecewise" / "multistep" or "cyclic" / "one_cycle"."""
    if kind in ("piecewise", "multistep"):
        return lr_schedule_piecewise(epochs, base_lr, **options)
    if kind in ("cyclic", "one_cycle"):
        return lr_schedule_cyclic(epochs, base_lr, **options)
    raise ConfigError(f"unknown LR schedule {kind!r}; known: piecewise, cyclic")


class PerStepLR:
    """Sets every param group's LR to ``schedule(step / steps_per_epoch)`` after each step.

    ``start_step`` resumes mid-run; ``state_dict`` / ``load_state_dict`` for checkpoints.
    """

    def __init__(
        self, optimizer: torch.optim.Optimizer, schedule: Schedule, steps_per_epoch: int, start_step: int = 0
    ) -> None:
        if steps_per_epoch < 1:
            raise ValueError("steps_per_epoch must be >= 1")
        self.optimizer = optimizer
        self.schedule = schedule
        self.steps_per_epoch = steps_per_epoch
        self.n = start_step
        self._apply()

    def _apply(self) -> None:
        lr = self.schedule(self.n / self.steps_per_epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def step(self) -> None:
        self.n += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, int]:
        return {"n": self.n}

    def load_state_dict(self, sd: Mapping[str, int]) -> None:
        self.n = int(sd["n"])
        self._apply()


def _unpack(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(batch, Mapping):
        x = next((batch[k] for k in _X_KEYS if k in batch), None)
        y = next((batch[k] for k in _Y_KEYS if k in batch), None)
        if x is None or y is None:
            raise ValueError(
                f"batch dict needs an image key ({', '.join(_X_KEYS)}) and a label key ({', '.join(_Y_KEYS)}); got {sorted(batch)}"
            )
        return x, y
    x, y = batch[0], batch[1]
    return x, y


def _to_device(x: torch.Tensor, y: torch.Tensor, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.as_tensor(x).to(device, non_blocking=True)
    if x.dtype == torch.uint8:  # raw pixels: the methods work on [0, 1]
        x = x.float().div_(255.0)
    return x, torch.as_tensor(y).to(device, non_blocking=True).long()


def train_one_epoch(
    model: nn.Module,
    method: TrainingMethod,
    loader: Iterable[Any],
    optimizer: torch.optim.Optimizer,
    scheduler_step: Callable[[], Any] | None,
    state: TrainState,
    device: torch.device | str,
    *,
    max_steps: int | None = None,
    extra_loss: ExtraLoss | None = None,
) -> dict[str, float]:
    """Train ``model`` for one pass over ``loader``; returns the epoch's metrics.

    Batches are (x, y) sequences or dicts with image/label keys; uint8 images are scaled
    to [0, 1]. ``scheduler_step`` (e.g. ``PerStepLR.step`` or a torch scheduler's
    ``step``) runs after every optimizer step. ``state.step`` counts batches,
    ``state.epoch`` is incremented at the end. ``max_steps`` caps the batches (smoke runs).
    ``extra_loss`` (an :data:`ExtraLoss`) is added to the method's loss of every batch, on
    the clean batch; its stats join the method's (``stat_<name>``).

    Returns loss (mean per sample), clean_acc (NaN when the method computes no clean
    logits: PGD-AT and FGSM-RS without ``track_clean``), adv_acc (NaN for standard
    training), samples, steps, seconds, samples_per_s, lr (at the end), epoch (the one just
    trained) and the per-batch mean of each method stat as ``stat_<name>``.
    """
    model.train()
    device = torch.device(device)
    zero = torch.zeros((), device=device)
    loss_sum, clean_correct, adv_correct = zero.clone(), zero.clone(), zero.clone()
    samples = clean_seen = adv_seen = steps = 0
    stat_sums: dict[str, float] = {}
    stat_counts: dict[str, int] = {}
    max_norm = method.options.max_grad_norm
    params = [p for p in model.parameters() if p.requires_grad]
    t0 = time.perf_counter()
    for batch in loader:
        if max_steps is not None and steps >= max_steps:
            break
        x, y = _to_device(*_unpack(batch), device)
        out = method.step(model, x, y, state)
        loss = out.loss
        if extra_loss is not None:
            added, added_stats = extra_loss(model, x, y, state)
            loss = loss + added
            out.stats = {**out.stats, **added_stats}
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if max_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, max_norm)
        optimizer.step()
        method.after_optimizer_step(model, state)
        if scheduler_step is not None:
            scheduler_step()
        n = y.shape[0]
        loss_sum += loss.detach() * n
        if out.logits_clean is not None:
            clean_correct += accuracy_counts(out.logits_clean, y)
            clean_seen += n
        if out.logits_adv is not None:
            adv_correct += accuracy_counts(out.logits_adv, y)
            adv_seen += n
        for k, v in out.stats.items():
            stat_sums[k] = stat_sums.get(k, 0.0) + float(v)
            stat_counts[k] = stat_counts.get(k, 0) + 1
        samples += n
        steps += 1
        state.step += 1
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    epoch = state.epoch
    state.epoch += 1
    result: dict[str, float] = {
        "epoch": float(epoch),
        "loss": loss_sum.item() / samples if samples else math.nan,
        "clean_acc": clean_correct.item() / clean_seen if clean_seen else math.nan,
        "adv_acc": adv_correct.item() / adv_seen if adv_seen else math.nan,
        "samples": float(samples),
        "steps": float(steps),
        "seconds": seconds,
        "samples_per_s": samples / seconds if seconds > 0 else math.nan,
        "lr": float(optimizer.param_groups[0]["lr"]),
    }
    for k, total in stat_sums.items():
        result[f"stat_{k}"] = total / stat_counts[k]
    return result
