"""What every CTC phoneme recogniser shares: the log-mel front end, the model contract, the
registry, greedy CTC decoding and the lexicon word decoder.

The model is split in two on purpose: ``features(wave)`` gives the frame-level *phoneme
representation* (output of the convolutional subsampling, before the encoder blocks) and
``head(features)`` maps it to per-frame log-probabilities. WAPAT's adversary lives between the
two (the paper perturbs the output of the conv feature extractor), SpecAugment masks the
log-mel input, and waveform PGD differentiates through ``features`` itself.

Front end: torch.stft (25 ms Hann window, 10 ms hop at 16 kHz) and a hand-built triangular
mel filterbank (HTK mel scale), log(·+1e-6); torchaudio is not a dependency.

Word output (``LexiconDecoder``): the greedy phone string is split on the word-boundary token
and each chunk becomes the lexicon word with the smallest phone edit distance (ties: the
shorter, then alphabetical word). A beam search over a word graph would recover more from
boundary errors, but needs a language model the project does not have; closest-word lookup is
transparent and its failures show up directly as WER above PER.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from pydantic import Field
from torch import nn

from trustflow.data.speech.phones import PHONES, WORD, decode
from trustflow.registry import Entry, Options, Registry

SAMPLE_RATE = 16000


def mel_filterbank(n_mels: int, n_fft: int, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """(n_fft//2+1, n_mels) triangular filters equally spaced on the HTK mel scale."""

    def hz_to_mel(f: float) -> float:
        return 2595.0 * math.log10(1.0 + f / 700.0)

    mels = torch.linspace(hz_to_mel(0.0), hz_to_mel(sample_rate / 2), n_mels + 2)
    hz = 700.0 * (10 ** (mels / 2595.0) - 1.0)
    freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    lo, mid, hi = hz[:-2, None], hz[1:-1, None], hz[2:, None]
    up = (freqs[None] - lo) / (mid - lo)
    down = (hi - freqs[None]) / (hi - mid)
    return torch.clamp(torch.minimum(up, down), min=0.0).T.contiguous()


class LogMel(nn.Module):
    """Waveform (B, T) in [-1, 1] -> log-mel (B, frames, n_mels); differentiable."""

    def __init__(self, n_mels: int = 80, n_fft: int = 400, hop: int = 160) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.window: torch.Tensor
        self.fbank: torch.Tensor
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.register_buffer("fbank", mel_filterbank(n_mels, n_fft), persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(
            wave, self.n_fft, self.hop, window=self.window, center=True, pad_mode="constant", return_complex=True
        )  # zeros past the end, as in a padded batch: an utterance's frames do not depend on its batch
        power = spec.real**2 + spec.imag**2  # (B, F, frames)
        return torch.log(power.transpose(1, 2) @ self.fbank + 1e-6)

    def frames(self, samples: torch.Tensor) -> torch.Tensor:
        return samples // self.hop + 1


class CTCRecogniser(nn.Module, ABC):
    """A phoneme CTC model: ``features`` (phoneme representation) then ``head`` (log-probs)."""

    name: ClassVar[str]
    Options: ClassVar[type[Options]]
    vocab: tuple[str, ...] = PHONES

    def __init__(self) -> None:
        super().__init__()
        self.frontend = LogMel()
        self.spec_augment: Any = None  # a callable on log-mel (B, frames, mels), set by SpecAugment training

    def log_mel(self, wave: torch.Tensor) -> torch.Tensor:
        mel = self.frontend(wave)
        if self.training and self.spec_augment is not None:
            mel = self.spec_augment(mel)
        return mel

    @abstractmethod
    def features(self, wave: torch.Tensor, samples: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) waveform -> (B, frames', D) phoneme representation. ``samples`` (B,) are the
        valid samples of a zero-padded batch: statistics then ignore the padding, so an
        utterance's features do not depend on which utterances share its batch."""

    @abstractmethod
    def head(self, features: torch.Tensor) -> torch.Tensor:
        """(B, frames', D) -> (B, frames', vocab) log-probabilities."""

    @abstractmethod
    def output_lengths(self, samples: torch.Tensor) -> torch.Tensor:
        """Valid output frames for waveforms of ``samples`` samples."""

    def forward(self, wave: torch.Tensor, samples: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.features(wave, samples))


def _build(entry: Entry[type[CTCRecogniser]], options: Any) -> CTCRecogniser:
    return entry.obj(options)  # type: ignore[call-arg]


ASR_MODELS: Registry[type[CTCRecogniser]] = Registry(
    "asr model", plugins="trustflow.models.speech.recognisers", factory=_build
)


class CTCLossConfig(Options):
    """CTC as used in training (sum over the batch of per-utterance loss / target length, divided
    by the batch size or by ``total``)."""

    zero_infinity: bool = Field(default=True)


def ctc_loss(
    log_probs: torch.Tensor,
    out_lengths: torch.Tensor,
    targets: Sequence[Sequence[int]],
    zero_infinity: bool = True,
    total: int | None = None,
) -> torch.Tensor:
    """CTC over (B, frames, vocab) log-probs and ragged integer targets (blank = 0).

    Each utterance's loss is divided by its target length (as torch's ``"mean"``), then the sum
    is divided by ``total`` (default: B, i.e. torch's ``"mean"``). Data-parallel training passes
    the *global* batch size, so the workers' summed gradients are exactly the one-process
    gradient even when the last global batch splits unevenly (tasks/asr/train.py)."""
    flat = torch.tensor([t for seq in targets for t in seq], dtype=torch.long)
    lengths = torch.tensor([len(seq) for seq in targets], dtype=torch.long)
    per_utt = nn.functional.ctc_loss(
        log_probs.transpose(0, 1),
        flat,
        out_lengths.clamp(max=log_probs.shape[1]),
        lengths,
        blank=0,
        reduction="none",
        zero_infinity=zero_infinity,
    )
    return (per_utt / lengths.clamp_min(1).to(per_utt.dtype)).sum() / (total or len(targets))


def greedy_decode(log_probs: torch.Tensor, lengths: torch.Tensor | None = None) -> list[list[int]]:
    """Best path: arg-max per frame, merge repeats, drop blanks."""
    best = log_probs.argmax(-1).tolist()
    out: list[list[int]] = []
    for b, row in enumerate(best):
        n = len(row) if lengths is None else int(lengths[b])
        seq: list[int] = []
        prev = -1
        for t in row[:n]:
            if t != prev and t != 0:
                seq.append(t)
            prev = t
        out.append(seq)
    return out


def edit_distance(a: Sequence[Any], b: Sequence[Any]) -> int:
    """Levenshtein distance (substitution, insertion, deletion all cost 1)."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


class LexiconDecoder:
    """Phone string -> words by closest lexicon entry per ``|``-separated chunk (see module doc)."""

    def __init__(self, lexicon: Mapping[str, tuple[str, ...]]) -> None:
        self.entries = sorted(lexicon.items(), key=lambda kv: (len(kv[1]), kv[0]))

    def word(self, phones: Sequence[str]) -> str:
        best, best_d = "", None
        for word, pron in self.entries:
            d = edit_distance(phones, pron)
            if best_d is None or d < best_d:
                best, best_d = word, d
                if d == 0:
                    break
        return best

    def __call__(self, ids: Sequence[int]) -> str:
        chunks: list[list[str]] = [[]]
        for p in decode(ids):
            if p == WORD:
                chunks.append([])
            else:
                chunks[-1].append(p)
        return " ".join(self.word(c) for c in chunks if c)
