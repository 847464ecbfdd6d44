"""Demo: robust speech recognition. espeak-ng command sentences and the pocketsphinx-testdata
recordings ingested; plain vs WAPAT training of a small conv-CTC phoneme recogniser on Ray
Train (8 short epochs); WER clean, under noise 10 dB, reverb and telephone, and on the real
recordings. Not in the default set (a few minutes on 2 cores; needs ``make speech``)."""

from __future__ import annotations

from typing import Any

from trustflow.flows.demos.base import DEMO_PIPELINES, DemoContext


@DEMO_PIPELINES.register("asr")
def asr_step(ctx: DemoContext) -> dict[str, Any]:
    from trustflow.flows.asr import demo_asr

    return {"asr": demo_asr()}
