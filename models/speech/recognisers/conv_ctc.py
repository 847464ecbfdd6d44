"""A small convolutional CTC phoneme recogniser (default ~0.5M parameters).

log-mel (80) -> two stride-2 convs (4x subsampling, 40 ms per output frame; this output is the
phoneme representation) -> ``blocks`` residual blocks of depthwise-separable 1-D convolution and
a feed-forward layer (the convolution module and FFN of a Conformer, without self-attention:
attention adds little at these utterance lengths and costs the most on CPU) -> phones + blank.
Small enough to train on espeak speech in minutes on two cores, which the benchmark needs.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from trustflow.data.speech.phones import PHONES
from trustflow.models.speech.ctc import ASR_MODELS, CTCRecogniser
from trustflow.registry import Options


class ConvCTCOptions(Options):
    width: int = Field(default=144, ge=8)
    blocks: int = Field(default=4, ge=1)
    kernel: int = Field(default=15, ge=3)
    dropout: float = Field(default=0.1, ge=0, lt=1)


class _Block(nn.Module):
    def __init__(self, width: int, kernel: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.pw1 = nn.Linear(width, 2 * width)
        self.dw = nn.Conv1d(width, width, kernel, padding=kernel // 2, groups=width)
        self.bn = nn.BatchNorm1d(width)
        self.pw2 = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        self.ffn = nn.Sequential(
            nn.Linear(width, 2 * width), nn.SiLU(), nn.Dropout(dropout), nn.Linear(2 * width, width)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = nn.functional.glu(self.pw1(self.norm1(x)), dim=-1)
        h = nn.functional.silu(self.bn(self.dw(h.transpose(1, 2)))).transpose(1, 2)
        x = x + self.drop(self.pw2(h))
        return x + self.drop(self.ffn(self.norm2(x)))


@ASR_MODELS.register("conv-ctc", options=ConvCTCOptions)
class ConvCTC(CTCRecogniser):
    def __init__(self, options: ConvCTCOptions | None = None) -> None:
        super().__init__()
        o = options or ConvCTCOptions()
        self.options = o
        self.subsample = nn.Sequential(
            nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.SiLU(), nn.Conv2d(16, 16, 3, stride=2, padding=1), nn.SiLU()
        )
        self.proj = nn.Linear(16 * 20, o.width)
        self.encoder = nn.Sequential(*[_Block(o.width, o.kernel, o.dropout) for _ in range(o.blocks)])
        self.norm = nn.LayerNorm(o.width)
        self.out = nn.Linear(o.width, len(PHONES))

    def features(self, wave: torch.Tensor, samples: torch.Tensor | None = None) -> torch.Tensor:
        mel = self.log_mel(wave)
        if samples is None:
            mel = (mel - mel.mean(dim=(1, 2), keepdim=True)) / (mel.std(dim=(1, 2), keepdim=True) + 1e-5)
        else:  # per-utterance statistics over its valid frames only; padded frames become 0
            valid = torch.arange(mel.shape[1])[None, :] < self.frontend.frames(samples).clamp(max=mel.shape[1])[:, None]
            mask = valid[:, :, None].to(mel.dtype)
            count = mask.sum(dim=(1, 2), keepdim=True) * mel.shape[2]
            mean = (mel * mask).sum(dim=(1, 2), keepdim=True) / count
            var = (((mel - mean) * mask) ** 2).sum(dim=(1, 2), keepdim=True) / (count - 1).clamp_min(1)
            mel = (mel - mean) / (var.sqrt() + 1e-5) * mask
        h = self.subsample(mel.unsqueeze(1))  # (B, 16, frames/4, 20)
        return self.proj(h.permute(0, 2, 1, 3).flatten(2))

    def head(self, features: torch.Tensor) -> torch.Tensor:
        return nn.functional.log_softmax(self.out(self.norm(self.encoder(features))), dim=-1)

    def output_lengths(self, samples: torch.Tensor) -> torch.Tensor:
        frames = self.frontend.frames(samples)
        for _ in range(2):
            frames = (frames - 1) // 2 + 1
        return frames
