"""Speech shifts: deterministic by seed, length-preserving where they claim, and doing what they say."""

from __future__ import annotations

import math

import pytest
import torch

from trustflow.tasks.asr.shifts.base import SPEECH_SHIFTS, rms
from trustflow.tasks.asr.specaugment import SpecAugment, SpecAugmentOptions


def _tone(hz: float, n: int = 8000, batch: int = 2) -> torch.Tensor:
    t = torch.arange(n) / 16000
    return (0.5 * torch.sin(2 * math.pi * hz * t))[None].repeat(batch, 1)


def _peak_hz(wave: torch.Tensor) -> float:
    spec = torch.fft.rfft(wave).abs()
    return float(spec.argmax()) * 16000 / wave.shape[-1]


@pytest.mark.parametrize("name", SPEECH_SHIFTS.names())
def test_every_shift_is_deterministic_and_keeps_length_when_it_claims(name: str) -> None:
    shift = SPEECH_SHIFTS.create(SPEECH_SHIFTS.example(name))
    wave = _tone(440) + 0.01 * torch.randn(2, 8000, generator=torch.Generator().manual_seed(0))
    a, b = shift.apply(wave, seed=5), shift.apply(wave, seed=5)
    assert torch.equal(a, b)
    assert torch.isfinite(a).all()
    if shift.length_preserving:
        assert a.shape == wave.shape
    else:
        assert a.shape[0] == wave.shape[0] and a.shape[-1] != wave.shape[-1]


@pytest.mark.parametrize("name", ["noise", "reverb", "band-reject", "time-drop"])
def test_random_shifts_differ_between_seeds(name: str) -> None:
    shift = SPEECH_SHIFTS.create(name)
    wave = _tone(440)
    assert not torch.equal(shift.apply(wave, 1), shift.apply(wave, 2))


def test_noise_hits_its_snr() -> None:
    wave = _tone(440, n=16000)
    noisy = SPEECH_SHIFTS.create("noise?snr_db=5").apply(wave, 0)
    snr = 20 * torch.log10(rms(wave) / rms(noisy - wave))
    assert torch.allclose(snr, torch.full_like(snr, 5.0), atol=1e-3)


def test_telephone_removes_out_of_band_tone_keeps_in_band() -> None:
    tel = SPEECH_SHIFTS.create("telephone?mulaw=false")
    assert float(rms(tel.apply(_tone(6000), 0)).max()) < 1e-3
    assert float(rms(tel.apply(_tone(1000), 0)).min()) > 0.3


def test_pitch_moves_the_tone_speed_changes_length() -> None:
    up = SPEECH_SHIFTS.create("pitch?semitones=12").apply(_tone(500, n=16000), 0)
    assert _peak_hz(up[0]) == pytest.approx(1000, abs=10)
    fast = SPEECH_SHIFTS.create("speed?factor=1.25").apply(_tone(400, n=16000), 0)
    assert fast.shape[-1] == 12800 and _peak_hz(fast[0]) == pytest.approx(500, abs=5)


def test_time_drop_zeroes_spans_only() -> None:
    wave = torch.ones(1, 16000)
    out = SPEECH_SHIFTS.create("time-drop?spans=2&max_ms=50").apply(wave, 3)
    dropped = int((out == 0).sum())
    assert 0 < dropped <= 2 * 800 and bool(((out == 0) | (out == 1)).all())


def test_specaugment_masks_are_seeded_and_keep_shape() -> None:
    mel = torch.randn(2, 100, 80)
    opts = SpecAugmentOptions(freq_masks=2, freq_width=10, time_masks=2, time_width=10)
    a = SpecAugment(opts, torch.Generator().manual_seed(0))(mel)
    b = SpecAugment(opts, torch.Generator().manual_seed(0))(mel)
    assert torch.equal(a, b) and a.shape == mel.shape and not torch.equal(a, mel)
