"""Plain CTC training on the clean waveforms (the reference every method is compared with)."""

from __future__ import annotations

from trustflow.models.speech.ctc import CTCRecogniser
from trustflow.registry import NoOptions
from trustflow.tasks.asr.methods.base import ASR_METHODS, ASRMethod, Batch, batch_loss


@ASR_METHODS.register("plain")
class Plain(ASRMethod[NoOptions]):
    def step(self, model: CTCRecogniser, batch: Batch) -> dict[str, float]:
        loss = batch_loss(model, batch.wave, batch.samples, batch.targets, batch.total)
        self.update(model, loss)
        return {"ctc": loss.item()}
