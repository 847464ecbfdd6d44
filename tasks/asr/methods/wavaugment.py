"""WavAugment-style training: CTC on a copy shifted by one random waveform augmentation.

The chain (noise, synthetic reverb, band-reject, time-drop, pitch up/down) is WAPAT's
augmentation set minus MUSAN noise (white noise instead; no noise corpus offline)."""

from __future__ import annotations

from pydantic import Field

from trustflow.models.speech.ctc import CTCRecogniser
from trustflow.registry import Options
from trustflow.tasks.asr.methods.base import (
    ASR_METHODS,
    DEFAULT_CHAIN,
    ASRMethod,
    AugmentChain,
    Batch,
    TrainConfig,
    batch_loss,
)


class WavAugmentOptions(Options):
    chain: tuple[str, ...] = DEFAULT_CHAIN  # speech-shift specs
    p: float = Field(default=0.8, ge=0, le=1)  # chance a batch is augmented


@ASR_METHODS.register("wavaugment", options=WavAugmentOptions)
class WavAugment(ASRMethod[WavAugmentOptions]):
    def setup(self, model: CTCRecogniser, config: TrainConfig, rank: int = 0) -> None:
        super().setup(model, config, rank)
        self.chain = AugmentChain(self.options.chain, self.options.p)

    def step(self, model: CTCRecogniser, batch: Batch) -> dict[str, float]:
        wave, samples = self.chain(batch.wave, batch.samples, self.gen)
        loss = batch_loss(model, wave, samples, batch.targets, batch.total)
        self.update(model, loss)
        return {"ctc": loss.item()}
