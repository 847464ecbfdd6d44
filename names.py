"""Every flow's name, its human title and its stage names, in one place.

Why one module: flow names are the folders of ``runs/<flow>/<run_id>/`` in the store, the
keys of the report's sections and the Prefect flow names; stage names are the Parquet
folders under a run. Spelled once here, a rename cannot leave a reader behind. This module
sits beside ``settings``/``errors`` at the bottom of the layer rule, so every layer may use it.
"""

from __future__ import annotations

from typing import Final

# -- flows (runs/<flow>/...) -----------------------------------------------------------
INGEST: Final = "ingest"
SEVAL_EVALUATE: Final = "seval_evaluate"
SEVAL_GENERATE: Final = "seval_generate"
SEVAL_ADAPTIVE: Final = "seval_adaptive"  # Prefect flow name only: it writes into the seval_evaluate run
ADVERSARIAL_TRAIN: Final = "adversarial_train"
ROBUSTNESS_EVALUATE: Final = "robustness_evaluate"
DETECTOR_EVALUATE: Final = "detector_evaluate"
CONTINUOUS_EVAL: Final = "continuous_eval"
ATTRIBUTE_ROBUSTNESS: Final = "attribute_robustness"
CRITIC_FEATURES: Final = "critic_features"  # cache of probe features, one run per (model, layers, poolings)
FINGERPRINT_EMBED: Final = "fingerprint_embed"
FINGERPRINT_ATTACK: Final = "fingerprint_attack"
FINGERPRINT_TRACE: Final = "fingerprint_trace"
FAIRNESS_TRAIN: Final = "fairness_train"
FAIRNESS_EVALUATE: Final = "fairness_evaluate"
FEWSHOT_ADAPT: Final = "fewshot_adapt"
ASR_TRAIN: Final = "asr_train"
ASR_EVALUATE: Final = "asr_evaluate"
DEVICE_FIT: Final = "device_fit"

FLOW_TITLES: Final[dict[str, str]] = {
    SEVAL_EVALUATE: "S-Eval safety evaluation",
    SEVAL_GENERATE: "S-Eval test suite generation",
    ADVERSARIAL_TRAIN: "Adversarial training",
    ROBUSTNESS_EVALUATE: "Classifier robustness evaluation",
    DETECTOR_EVALUATE: "Detector robustness evaluation",
    INGEST: "Ingested dataset",
    CONTINUOUS_EVAL: "Continuous evaluation",
    CRITIC_FEATURES: "Critic feature cache",
    ATTRIBUTE_ROBUSTNESS: "Attribute robustness (ImageNet-E style edits)",
    FINGERPRINT_EMBED: "Fingerprint embedding",
    FINGERPRINT_ATTACK: "Ownership attacks",
    FINGERPRINT_TRACE: "Provenance tracing",
    FAIRNESS_TRAIN: "Fairness fine-tuning",
    FAIRNESS_EVALUATE: "Fairness of text classifiers",
    FEWSHOT_ADAPT: "Few-shot adaptation and its robustness",
    ASR_TRAIN: "Robust speech recognition training",
    ASR_EVALUATE: "Speech recognition under domain shifts",
    DEVICE_FIT: "Cryogenic device-model fits",
}

# the combined leaderboard page's order; flows added later follow in name order
BOARD_ORDER: Final = (SEVAL_EVALUATE, DETECTOR_EVALUATE, ROBUSTNESS_EVALUATE, ADVERSARIAL_TRAIN, CONTINUOUS_EVAL)

# -- stages (runs/<flow>/<run_id>/<stage>/ and datasets/<dataset_id>/<stage>/) ----------
SUMMARY: Final = "summary"
PROMPTS: Final = "prompts"
IMAGES: Final = "images"
CATEGORIES: Final = "categories"
ANNOTATIONS: Final = "annotations"

SUITE: Final = "suite"
RESPONSES: Final = "responses"
JUDGEMENTS: Final = "judgements"
LEADERBOARD: Final = "leaderboard"
CANDIDATES: Final = "candidates"
GENERATION_LOG: Final = "generation_log"
SELECTION_DROPS: Final = "selection_drops"
REWRITE_DROPS: Final = "rewrite_drops"
TRANSLATIONS: Final = "translations"
REF_RESPONSES: Final = "ref_responses"
REF_JUDGEMENTS: Final = "ref_judgements"
ADAPTIVE_TURNS: Final = "adaptive_turns"  # issue 21: adaptive multi-round attacks
ADAPTIVE_METRICS: Final = "adaptive_metrics"

EPOCHS: Final = "epochs"
RESULTS: Final = "results"

DETECTIONS: Final = "detections"
METRICS: Final = "metrics"

FINGERPRINT: Final = "fingerprint"
DESCENDANTS: Final = "descendants"
SCORES: Final = "scores"
VERDICTS: Final = "verdicts"

LABELS: Final = "labels"
TEXTS: Final = "texts"  # fairness_texts of a fairness dataset kind
EPISODES: Final = "episodes"  # fewshot_episodes: one row per (method, set, k, seed)
UTTERANCES: Final = "utterances"  # speech_utterances of a speech dataset kind
GUMMEL: Final = "gummel"  # gummel measurement points of the gummel dataset kind
FITS: Final = "fits"  # device_fits: one row per (device, T, V_sub or joint, compact model)
FEATURES: Final = "features"

EDITS: Final = "edits"  # attribute_edits rows (tasks/attributes/make.py)
PREDICTIONS: Final = "predictions"
