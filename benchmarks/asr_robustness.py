"""ASR robustness of training methods on espeak-ng speech in one run (issue 19): WER per domain.

One seeded espeak-ng set (closed-vocabulary command sentences, data/speech/utterances.py):
``--train`` sentences spoken by the six training voices (random rate/pitch) train one small
``conv-ctc`` model per method from the same initial weights, ``--epochs`` epochs. The test
sentences (``--test``, disjoint from training) are spoken by the training voices; the domains
are that clean set, the same audio under each shift (white noise 10 and 0 dB SNR, synthetic
reverb, telephone band + mu-law, speed x1.15, pitch +3 semitones), the same sentences by four
*unseen* voices, the 11 real pocketsphinx-testdata recordings (out of vocabulary: the lexicon
holds their words, but nothing like them was heard in training), and waveform PGD (l-inf
0.002, 5 steps) on the clean set. WER (lexicon decoder) and PER per domain with 95 % bootstrap
intervals; ``ood_mean`` is the mean WER of the shifted/unseen domains (not clean, not PGD,
not real: those are reported apart). Training utterances/s per method is printed; Ray Train
(2 workers vs 1) and the Whisper references are phase 2.

usage: nice -n 10 python benchmarks/asr_robustness.py [--train 240] [--test 40] [--epochs 12] [--json out.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from typing import Any

import numpy as np
import torch

from trustflow.data.speech.phones import lexicon_for
from trustflow.data.speech.utterances import (
    TRAIN_VOICES,
    UNSEEN_VOICES,
    SynthConfig,
    Utterance,
    make_sentences,
    read_pocketsphinx,
    synthesise,
)
from trustflow.models.speech.ctc import ASR_MODELS, LexiconDecoder
from trustflow.tasks.asr.methods.base import ASR_METHODS, TrainConfig
from trustflow.tasks.asr.methods.pgd import wave_pgd
from trustflow.tasks.asr.metrics import per, wer
from trustflow.tasks.asr.shifts.base import SPEECH_SHIFTS
from trustflow.tasks.asr.train import fit, make_batch, transcribe

SHIFTS = {
    "noise10": "noise?snr_db=10",
    "noise0": "noise?snr_db=0",
    "reverb": "reverb",
    "telephone": "telephone",
    "speed1.15": "speed?factor=1.15",
    "pitch+3": "pitch?semitones=3",
}
APART = {"clean", "pgd", "real"}


def domains(test: list[Utterance], unseen: list[Utterance], real: list[Utterance]) -> dict[str, list[Any]]:
    """domain -> list of (waveform, utterance)."""
    out: dict[str, list[Any]] = {"clean": [(u.audio, u) for u in test]}
    for i, (name, spec) in enumerate(SHIFTS.items()):
        shift = SPEECH_SHIFTS.create(spec)
        out[name] = [
            (shift.apply(torch.as_tensor(u.audio)[None], 1000 * i + j)[0].numpy(), u) for j, u in enumerate(test)
        ]
    out["unseen-voices"] = [(u.audio, u) for u in unseen]
    out["real"] = [(u.audio, u) for u in real]
    return out


def evaluate(model: Any, sets: dict[str, list[Any]], decoder: LexiconDecoder, pgd_eps: float) -> dict[str, Any]:
    res: dict[str, Any] = {}
    for name, items in sets.items():
        hyp = transcribe(model, [w for w, _ in items], decoder)
        w = wer([u.transcript for _, u in items], [h for _, h in hyp], samples=500)
        p = per([u.phones for _, u in items], [ph for ph, _ in hyp], samples=0)
        res[name] = {"wer": w.rate, "low": w.low, "high": w.high, "per": p.rate, "n": w.n}
    clean = [u for _, u in sets["clean"]]
    advs: list[np.ndarray] = []
    gen = torch.Generator().manual_seed(0)
    for lo in range(0, len(clean), 8):
        batch = make_batch(clean[lo : lo + 8])
        adv = wave_pgd(model, batch, pgd_eps, pgd_eps / 2, 5, gen)
        advs += [adv[i, : int(batch.samples[i])].numpy() for i in range(len(batch.targets))]
    hyp = transcribe(model, advs, decoder)
    w = wer([u.transcript for u in clean], [h for _, h in hyp], samples=500)
    res["pgd"] = {
        "wer": w.rate,
        "low": w.low,
        "high": w.high,
        "per": per([u.phones for u in clean], [p for p, _ in hyp], samples=0).rate,
        "n": w.n,
    }
    ood = [v["wer"] for k, v in res.items() if k not in APART]
    res["ood_mean"] = float(np.mean(ood))
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=240)
    ap.add_argument("--test", type=int, default=40)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--model", default="conv-ctc?width=96&blocks=3")
    ap.add_argument("--methods", default="plain,specaugment,wavaugment,wapat")
    ap.add_argument("--pgd-eps", type=float, default=0.002)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    sentences = make_sentences(args.train + args.test, args.seed)
    train_s, test_s = sentences[: args.train], sentences[args.train :]
    train = synthesise(SynthConfig(voices=TRAIN_VOICES, seed=args.seed), train_s)
    test = synthesise(SynthConfig(voices=TRAIN_VOICES, seed=args.seed + 1), test_s)
    unseen = synthesise(SynthConfig(voices=UNSEEN_VOICES, seed=args.seed + 2, domain="unseen-voices"), test_s)
    real = read_pocketsphinx()
    lexicon = lexicon_for(w for u in train + test + real for w in u.transcript.split())
    decoder = LexiconDecoder(lexicon)
    sets = domains(test, unseen, real)
    print(
        f"data: {len(train)} train, {len(test)} test utterances, {len(lexicon)} lexicon words, "
        f"{sum(u.seconds for u in train) / 60:.1f} min training audio ({time.perf_counter() - t0:.0f} s)",
        flush=True,
    )

    torch.manual_seed(args.seed)
    init = ASR_MODELS.create(args.model)
    out: dict[str, Any] = {"args": vars(args), "methods": {}}
    for name in args.methods.split(","):
        model = copy.deepcopy(init)
        method = ASR_METHODS.create(name)
        config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed)
        result = fit(method, model, train, config)
        res = evaluate(model, sets, decoder, args.pgd_eps)
        res["train_utt_per_s"] = result.utterances_per_s
        res["train_s"] = result.seconds
        res["final_loss"] = result.history[-1] if result.history else {}
        out["methods"][name] = res
        row = "  ".join(f"{k} {v['wer'] * 100:.1f}" for k, v in res.items() if isinstance(v, dict) and "wer" in v)
        print(
            f"{name}: {row}  ood_mean {res['ood_mean'] * 100:.1f}  ({result.utterances_per_s:.1f} utt/s, {result.seconds:.0f} s)",
            flush=True,
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
