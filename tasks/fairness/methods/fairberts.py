"""fairBERTs (arXiv 2407.08189): a generator perturbs the pooled vector against a discriminator.

What the paper's summary fixes: G reads the token states h_s, h_c^F = h_c + G(h_s), a
discriminator D predicts the protected attribute from h_c^F, the task head reads h_c^F,
alternating min–max updates. The exact losses were not available; the choices here:

- **D step** (max side): D minimises cross-entropy on the attribute from h_c^F (detached).
- **Main step** (min side): task cross-entropy on h_c^F (δ held fixed) trains encoder and head;
  ``adv_weight`` × cross-entropy between D(h_c^F) and the *group prior* (the base rates)
  trains G only (encoder outputs detached on that path): the generator, not the encoder,
  pushes D towards what an uninformed guesser would predict. Letting that gradient into the
  encoder collapsed h_c (task at chance) in our synthetic runs; keeping it in G is also what
  makes G a separable, transferable part. The task gradient is kept out of G for the same
  reason in reverse: where the label correlates with the group, it pays G to *add* group
  information, which undid the adversary in our synthetic runs. Why not
  −L_D (the literal min–max): maximising D's loss is unbounded and rewards *flipping* D's
  answers, which leaves the attribute linearly decodable for any fresh probe; matching the
  prior is minimised exactly when D's output carries no attribute information.
- **Semantic preservation**: a hard bound ‖δ‖ ≤ ``eps``·‖h_c‖ (projection in the generator)
  plus ``kl_weight`` × KL(p(y|h_c) ‖ p(y|h_c^F)) with p(y|h_c) detached: the perturbation may
  not change what the task head would say without it beyond what fairness needs.

``d_steps`` discriminator updates per main update (GAN practice: keep D strong).
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from trustflow.models.text.encoder import TextClassifier
from trustflow.registry import Options
from trustflow.tasks.fairness.data import TextData
from trustflow.tasks.fairness.methods.base import FAIRNESS_METHODS, Batch, FairnessMethod, TrainConfig, main_optimizer
from trustflow.tasks.fairness.model import FairModel, Generator


class FairBertsOptions(Options):
    eps: float = Field(default=0.5, gt=0, le=2.0)  # ‖δ‖ ≤ eps·‖h_c‖
    adv_weight: float = Field(default=1.0, ge=0)
    kl_weight: float = Field(default=1.0, ge=0)
    d_steps: int = Field(default=1, ge=1, le=10)
    width: int = Field(default=256, ge=8)


def discriminator(hidden: int, n_groups: int, width: int) -> nn.Module:
    return nn.Sequential(nn.Linear(hidden, width), nn.ReLU(), nn.Linear(width, n_groups))


@FAIRNESS_METHODS.register("fairberts", options=FairBertsOptions, example="fairberts?eps=0.5&adv_weight=1")
class FairBerts(FairnessMethod[FairBertsOptions]):
    def setup(self, classifier: TextClassifier, data: TextData, config: TrainConfig) -> FairModel:
        self.config = config
        o = self.options
        model = FairModel(classifier, Generator(classifier.hidden, o.width, o.eps))
        self.discriminator = discriminator(classifier.hidden, len(data.groups), o.width)
        self.prior = torch.tensor(data.group_prior, dtype=torch.float32)
        self.optimizer = main_optimizer(model, config)
        self.d_optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=config.head_lr)
        return model

    def modules(self) -> dict[str, nn.Module]:
        return {"discriminator": self.discriminator}

    def discriminator_step(self, model: FairModel, batch: Batch) -> float:
        with torch.no_grad():
            rep = model.represent(batch.input_ids, batch.attention_mask)
        loss = nn.functional.cross_entropy(self.discriminator(rep), batch.z)
        self.d_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.d_optimizer.step()
        return loss.item()

    def main_step(self, model: FairModel, batch: Batch) -> dict[str, float]:
        assert self.optimizer is not None and model.generator is not None
        states, pooled = model.classifier.encode(batch.input_ids, batch.attention_mask)
        with torch.no_grad():
            delta = model.generator(states, batch.attention_mask, pooled)
        rep = pooled + delta
        task = nn.functional.cross_entropy(model.classifier.classify(rep), batch.y)
        # the adversarial and semantic terms train the generator only: the encoder sees them
        # through nothing (detached inputs), so it cannot satisfy D by collapsing h_c
        delta_g = model.generator(states.detach(), batch.attention_mask, pooled.detach())
        rep_g = pooled.detach() + delta_g
        log_d = nn.functional.log_softmax(self.discriminator(rep_g), dim=-1)
        adv = -(self.prior.to(log_d.device) * log_d).sum(-1).mean()  # CE to the group prior
        head = model.classifier.head
        with torch.no_grad():
            clean = nn.functional.softmax(head(pooled), dim=-1)
        kl = nn.functional.kl_div(nn.functional.log_softmax(head(rep_g), dim=-1), clean, reduction="batchmean")
        loss = task + self.options.adv_weight * adv + self.options.kl_weight * kl
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.discriminator.zero_grad(set_to_none=True)
        self.optimizer.step()
        return {"task": task.item(), "adv": adv.item(), "kl": kl.item()}

    def step(self, model: FairModel, batch: Batch) -> dict[str, float]:
        d_loss = 0.0
        for _ in range(self.options.d_steps):
            d_loss = self.discriminator_step(model, batch)
        return {**self.main_step(model, batch), "disc": d_loss}
