"""Distillation into a fresh student of the same architecture (all parameters re-initialised,
a fingerprint module included): KL to the teacher's softened outputs on the attacker's
(unlabelled) images."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from trustflow.tasks.provenance.attacks.base import (
    OWNERSHIP_ATTACKS,
    AttackContext,
    OwnershipAttack,
    TrainAttackOptions,
)
from trustflow.tasks.provenance.train import match_channels


class DistillOptions(TrainAttackOptions):
    temperature: float = Field(4.0, gt=0.0)
    lr: float = Field(0.05, gt=0.0)


def reinitialise(model: nn.Module, seed: int) -> None:
    """Fresh weights for every module that can reset itself (BatchNorm statistics included)."""
    torch.manual_seed(seed)
    for m in model.modules():
        reset = getattr(m, "reset_parameters", None)
        if callable(reset):
            reset()
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
    fp_weights = [m for n, m in model.named_modules() if type(m).__name__ == "FingerprintConv"]
    for fp in fp_weights:
        with torch.no_grad():
            fp.weight.normal_(0.0, fp.weight[0].numel() ** -0.5)
            fp.bias.zero_()


@OWNERSHIP_ATTACKS.register("distill", options=DistillOptions)
class Distill(OwnershipAttack[DistillOptions]):
    def apply(self, model: nn.Module, context: AttackContext) -> nn.Module:
        teacher = model.eval()
        student = self.copy(model)
        reinitialise(student, self.options.seed)
        data = context.data(self.options.dataset, "train", self.options.limit)
        x_all = torch.from_numpy(match_channels(data, int(getattr(model, "in_channels", data.in_channels))))
        g = self.generator()
        opt = torch.optim.SGD(student.parameters(), lr=self.options.lr, momentum=0.9, weight_decay=5e-4)
        t = self.options.temperature
        student.train()
        for _ in range(self.options.epochs):
            order = torch.randperm(len(x_all), generator=g)
            for step, i in enumerate(range(0, len(order), self.options.batch_size)):
                if self.options.max_steps is not None and step >= self.options.max_steps:
                    break
                x = x_all[order[i : i + self.options.batch_size]]
                with torch.no_grad():
                    soft = F.softmax(teacher(x) / t, dim=1)
                loss = F.kl_div(F.log_softmax(student(x) / t, dim=1), soft, reduction="batchmean") * t * t
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        return student.eval()
