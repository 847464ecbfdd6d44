"""SpecAugment: CTC on log-mel features with random frequency and time masks (train mode only)."""

from __future__ import annotations

from trustflow.models.speech.ctc import CTCRecogniser
from trustflow.tasks.asr.methods.base import ASR_METHODS, ASRMethod, Batch, TrainConfig, batch_loss
from trustflow.tasks.asr.specaugment import SpecAugment, SpecAugmentOptions


@ASR_METHODS.register("specaugment", options=SpecAugmentOptions)
class SpecAugmentMethod(ASRMethod[SpecAugmentOptions]):
    def setup(self, model: CTCRecogniser, config: TrainConfig, rank: int = 0) -> None:
        super().setup(model, config, rank)
        model.spec_augment = SpecAugment(self.options, self.gen)

    def step(self, model: CTCRecogniser, batch: Batch) -> dict[str, float]:
        loss = batch_loss(model, batch.wave, batch.samples, batch.targets, batch.total)
        self.update(model, loss)
        return {"ctc": loss.item()}
