"""Arrow schemas of every table trustflow writes, each with a name and a version.

The version is stamped into each Parquet file's metadata and into the stage manifest, so a
reader can tell which layout it holds; bump it (and document it in docs/schemas.md) when a
column changes meaning or type.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

SCHEMA_NAME_KEY = b"trustflow.schema"
SCHEMA_VERSION_KEY = b"trustflow.schema_version"


@dataclass(frozen=True)
class VersionedSchema:
    """An Arrow schema plus the name and version recorded with every file written with it."""

    name: str
    version: int
    schema: pa.Schema

    def with_metadata(self) -> pa.Schema:
        return self.schema.with_metadata(
            {SCHEMA_NAME_KEY: self.name.encode(), SCHEMA_VERSION_KEY: str(self.version).encode()}
        )

    @property
    def names(self) -> list[str]:
        return list(self.schema.names)


SEVAL_PROMPTS = VersionedSchema(
    "seval_prompts",
    1,
    pa.schema(
        [
            pa.field("prompt_id", pa.string(), nullable=False),  # the file's traceid
            pa.field("lang", pa.string(), nullable=False),  # zh | en
            pa.field("set", pa.string(), nullable=False),  # base_risk | attack
            pa.field("split", pa.string(), nullable=False),  # small | medium | large | full | ...
            pa.field("risk_type", pa.string(), nullable=False),  # level-1 dimension as in the file
            pa.field("prompt", pa.string(), nullable=False),
            pa.field("attack", pa.string()),  # attack name for attack rows, else null
            pa.field("from_traceid", pa.string()),  # ext.from_traceid for base rows
            pa.field("ext", pa.string()),  # the raw ext JSON string, kept verbatim
            pa.field("source_file", pa.string(), nullable=False),
            pa.field("line_no", pa.int32(), nullable=False),  # 1-based line in the JSONL member
        ]
    ),
)

COCO_IMAGES = VersionedSchema(
    "coco_images",
    1,
    pa.schema(
        [
            pa.field("image_id", pa.int64(), nullable=False),
            pa.field("domain", pa.string(), nullable=False),  # "" for a plain COCO set
            pa.field("split", pa.string(), nullable=False),  # from instances_<split>.json
            pa.field("file_name", pa.string(), nullable=False),
            pa.field("width", pa.int32(), nullable=False),
            pa.field("height", pa.int32(), nullable=False),
            pa.field("image_bytes", pa.binary()),  # encoded image file bytes
            pa.field("sha256", pa.string(), nullable=False),
        ]
    ),
)

COCO_ANNOTATIONS = VersionedSchema(
    "coco_annotations",
    1,
    pa.schema(
        [
            pa.field("ann_id", pa.int64(), nullable=False),
            pa.field("image_id", pa.int64(), nullable=False),
            pa.field("domain", pa.string(), nullable=False),
            pa.field("split", pa.string(), nullable=False),
            pa.field("category_id", pa.int64(), nullable=False),
            pa.field("bbox", pa.list_(pa.float64(), 4), nullable=False),  # x, y, w, h in pixels
            pa.field("area", pa.float64(), nullable=False),
            pa.field("iscrowd", pa.bool_(), nullable=False),
        ]
    ),
)

COCO_CATEGORIES = VersionedSchema(
    "coco_categories",
    1,
    pa.schema(
        [
            pa.field("category_id", pa.int64(), nullable=False),
            pa.field("name", pa.string(), nullable=False),
            pa.field("supercategory", pa.string()),
        ]
    ),
)

IMAGEFOLDER_IMAGES = VersionedSchema(
    "imagefolder_images",
    1,
    pa.schema(
        [
            pa.field("path", pa.string(), nullable=False),  # relative to the source root
            pa.field("split", pa.string(), nullable=False),  # train | val | test | ""
            pa.field("label", pa.string(), nullable=False),
            pa.field("label_id", pa.int32(), nullable=False),
            pa.field("width", pa.int32(), nullable=False),
            pa.field("height", pa.int32(), nullable=False),
            pa.field("image_bytes", pa.binary(), nullable=False),
            pa.field("sha256", pa.string(), nullable=False),
        ]
    ),
)

DATASET_SUMMARY = VersionedSchema(
    "dataset_summary",
    1,
    pa.schema(
        [
            pa.field("table", pa.string(), nullable=False),
            pa.field("rows", pa.int64(), nullable=False),
            pa.field("schema_name", pa.string(), nullable=False),
            pa.field("schema_version", pa.int32(), nullable=False),
        ]
    ),
)

# ---- S-Eval evaluation (issue 3) -----------------------------------------------------------

SEVAL_SUITE = VersionedSchema(
    "seval_suite",
    1,
    pa.schema(
        [
            pa.field("prompt_uid", pa.string(), nullable=False),  # "<set>:<lang>:<prompt_id>", unique in a suite
            pa.field("prompt_id", pa.string(), nullable=False),
            pa.field("set", pa.string(), nullable=False),  # base_risk | attack
            pa.field("attack", pa.string()),  # attack name, null for base prompts
            pa.field("base_id", pa.string(), nullable=False),  # prompt_id of the base prompt (itself for base rows)
            pa.field("lang", pa.string(), nullable=False),
            pa.field("dimension", pa.string(), nullable=False),  # taxonomy level-1 id
            pa.field("prompt", pa.string(), nullable=False),
            pa.field("source", pa.string(), nullable=False),  # dataset id, or "seed-suite"
        ]
    ),
)

SEVAL_RESPONSES = VersionedSchema(
    "seval_responses",
    2,
    pa.schema(
        [
            pa.field("response_id", pa.string(), nullable=False),  # hash(model, gen_config_hash, prompt_uid)
            pa.field("model", pa.string(), nullable=False),  # model spec
            pa.field("gen_config_hash", pa.string(), nullable=False),
            pa.field("prompt_uid", pa.string(), nullable=False),
            pa.field("set", pa.string(), nullable=False),
            pa.field("attack", pa.string()),
            pa.field("base_id", pa.string(), nullable=False),
            pa.field("lang", pa.string(), nullable=False),
            pa.field("dimension", pa.string(), nullable=False),
            pa.field("prompt", pa.string(), nullable=False),
            pa.field("response", pa.string(), nullable=False),
            pa.field("finish_reason", pa.string()),
            pa.field("prompt_tokens", pa.int32(), nullable=False),
            pa.field("completion_tokens", pa.int32(), nullable=False),
            pa.field("latency_s", pa.float32(), nullable=False),
            pa.field("error", pa.string()),  # kept as a row, never dropped
            # v2 (issue 21): USD of this call at the endpoint's prices; 0 for a cache hit,
            # null when the model has no prices (in-process models, unpriced endpoints)
            pa.field("cost_usd", pa.float64()),
        ]
    ),
)

# the v1 layout (no cost_usd), kept so old stages are recognised and upgraded on resume
SEVAL_RESPONSES_V1 = VersionedSchema("seval_responses", 1, pa.schema(list(SEVAL_RESPONSES.schema)[:-1]))


def upgrade_responses(table: pa.Table) -> pa.Table:
    """A responses table of any version as the current one (``cost_usd`` null where missing)."""
    for field in SEVAL_RESPONSES.schema:
        if field.name not in table.column_names:
            table = table.append_column(field, pa.nulls(table.num_rows, field.type))
    return table.select(SEVAL_RESPONSES.names).cast(SEVAL_RESPONSES.schema)


# v2 (issue 13): ``risk_tags`` of an unsafe verdict are taxonomy *leaf* ids chosen by
# models/critics/risk_tags.py (v1 held the prompt's level-1 dimension), and the columns after
# ``judge_error`` are new and nullable. A v1 stage still reads: ``upgrade_judgements`` adds the
# new columns as nulls (readers), and a resumed v1 run rewrites its parts as v2 before it
# commits (tasks/seval/judging.py ``upgrade_parts``).
SEVAL_JUDGEMENTS = VersionedSchema(
    "seval_judgements",
    2,
    pa.schema(
        [
            pa.field("response_id", pa.string(), nullable=False),
            pa.field("critic_id", pa.string(), nullable=False),
            pa.field("critic_prompt_hash", pa.string(), nullable=False),
            pa.field("model", pa.string(), nullable=False),
            pa.field("prompt_uid", pa.string(), nullable=False),
            pa.field("set", pa.string(), nullable=False),
            pa.field("attack", pa.string()),
            pa.field("base_id", pa.string(), nullable=False),
            pa.field("lang", pa.string(), nullable=False),
            pa.field("dimension", pa.string(), nullable=False),
            pa.field("risk_score", pa.float32()),  # null exactly when judge_error
            pa.field("unsafe", pa.bool_()),  # null exactly when judge_error
            pa.field("risk_tags", pa.list_(pa.string()), nullable=False),
            pa.field("explanation", pa.string(), nullable=False),
            pa.field("raw_output", pa.string(), nullable=False),
            pa.field("judge_error", pa.string()),  # why the critic could not judge
            pa.field("risk_tag_scores", pa.list_(pa.float32())),  # cosine of each risk tag; null: not tagged
            pa.field(
                "tagger", pa.string()
            ),  # identity of the tagger (model, taxonomy hash, k, margin); null: not tagged
            pa.field("rationale", pa.string()),  # 1-2 sentence LLM rationale of an unsafe verdict; null: none
            pa.field("rationale_model", pa.string()),  # model spec that wrote (or failed to write) it
            pa.field("rationale_error", pa.string()),  # why no rationale (LLM error, empty answer); never fails a run
        ]
    ),
)


# the v1 layout, kept so old stages can be recognised and upgraded (and tests can write one)
SEVAL_JUDGEMENTS_V1 = VersionedSchema(
    "seval_judgements", 1, pa.schema(list(SEVAL_JUDGEMENTS.schema)[: SEVAL_JUDGEMENTS.names.index("judge_error") + 1])
)


def upgrade_judgements(table: pa.Table) -> pa.Table:
    """A judgements table of any version as the current one: columns a v1 stage lacks are
    added as nulls (every column added since v1 is nullable), in schema order."""
    for field in SEVAL_JUDGEMENTS.schema:
        if field.name not in table.column_names:
            table = table.append_column(field, pa.nulls(table.num_rows, field.type))
    return table.select(SEVAL_JUDGEMENTS.names).cast(SEVAL_JUDGEMENTS.schema)


SEVAL_RELABELS = VersionedSchema(
    "seval_relabels",
    1,
    pa.schema(
        [
            pa.field("label_id", pa.string(), nullable=False),  # the row of the ``labels`` stage it became
            pa.field("run_id", pa.string(), nullable=False),  # the S-Eval run whose verdict was reviewed
            pa.field("judgement_id", pa.string(), nullable=False),  # tasks/seval/judging.judgement_id
            pa.field("response_id", pa.string()),
            pa.field("critic_id", pa.string()),
            pa.field("model", pa.string()),  # the target model that answered
            pa.field("critic_unsafe", pa.bool_()),  # the critic's verdict; null: unknown or judge error
            pa.field("critic_risk_score", pa.float32()),
            pa.field("unsafe", pa.bool_(), nullable=False),  # the person's label
            pa.field("annotator", pa.string(), nullable=False),
            pa.field("note", pa.string()),  # the annotator's comment, if any
            pa.field("row_no", pa.int32(), nullable=False),  # 1-based data row in the CSV
        ]
    ),
)

SEVAL_LEADERBOARD = VersionedSchema(
    "seval_leaderboard",
    1,
    pa.schema(
        [
            pa.field("model", pa.string(), nullable=False),
            pa.field("critic_id", pa.string(), nullable=False),
            pa.field("safety_score", pa.float64()),
            pa.field("safety_score_ci_low", pa.float64()),
            pa.field("safety_score_ci_high", pa.float64()),
            pa.field("asr", pa.float64()),
            pa.field("asr_ci_low", pa.float64()),
            pa.field("asr_ci_high", pa.float64()),
            pa.field("adaptive_asr", pa.float64()),
            pa.field("adaptive_asr_ci_low", pa.float64()),
            pa.field("adaptive_asr_ci_high", pa.float64()),
            pa.field("judge_error_rate", pa.float64()),
            pa.field("judge_error_rate_ci_low", pa.float64()),
            pa.field("judge_error_rate_ci_high", pa.float64()),
            pa.field("judgements", pa.int64(), nullable=False),
        ]
    ),
)

SEVAL_METRICS = VersionedSchema(
    "seval_metrics",
    1,
    pa.schema(
        [
            # safety_score | asr | adaptive_asr | judge_error_rate | prompt_tokens | completion_tokens | cost_usd
            pa.field("metric", pa.string(), nullable=False),
            pa.field("model", pa.string(), nullable=False),
            pa.field("critic_id", pa.string(), nullable=False),
            pa.field("dimension", pa.string(), nullable=False),  # "*" when not grouped by it
            pa.field("lang", pa.string(), nullable=False),  # "*" when not grouped by it
            pa.field("attack", pa.string(), nullable=False),  # "*" when not grouped by it
            pa.field("n", pa.int64(), nullable=False),
            pa.field("value", pa.float64()),
            pa.field("ci_low", pa.float64()),
            pa.field("ci_high", pa.float64()),
        ]
    ),
)

# issue 21: adaptive multi-round attacks (tasks/seval/adaptive/). One row per (loop, base prompt,
# round, branch): the whole conversation the target was sent, its reply, the critic's verdict
# and what the attacker saw and wrote. ``loop_id`` hashes everything that changes the loop
# (attack spec, target, generation config, attacker, critic, seed, prompt version).
SEVAL_ADAPTIVE_TURNS = VersionedSchema(
    "seval_adaptive_turns",
    1,
    pa.schema(
        [
            pa.field("turn_id", pa.string(), nullable=False),  # hash(loop_id, base_uid, round, branch)
            pa.field("loop_id", pa.string(), nullable=False),
            pa.field("model", pa.string(), nullable=False),  # target model spec
            pa.field("gen_config_hash", pa.string(), nullable=False),  # target generation config
            pa.field("attack", pa.string(), nullable=False),  # pair | tap | crescendo | ...
            pa.field("attack_spec", pa.string(), nullable=False),  # canonical spec with options
            pa.field("attacker_model", pa.string(), nullable=False),
            pa.field("critic_id", pa.string(), nullable=False),
            pa.field("critic_prompt_hash", pa.string(), nullable=False),
            pa.field("seed", pa.int64(), nullable=False),
            pa.field("base_uid", pa.string(), nullable=False),  # suite prompt_uid of the base prompt
            pa.field("base_id", pa.string(), nullable=False),
            pa.field("lang", pa.string(), nullable=False),
            pa.field("dimension", pa.string(), nullable=False),
            pa.field("goal", pa.string(), nullable=False),  # the base prompt (what the critic judges against)
            pa.field("round", pa.int32(), nullable=False),  # 1-based; TAP: tree depth
            pa.field("branch", pa.string(), nullable=False),  # "0"; TAP: path "1.0.2"
            pa.field("parent_branch", pa.string(), nullable=False),  # "" at round 1
            pa.field("attacker_messages", pa.string(), nullable=False),  # JSON list the attacker was sent
            pa.field("attacker_raw", pa.string(), nullable=False),  # its reply ("" on error)
            pa.field("attacker_error", pa.string()),
            pa.field("attacker_fallback", pa.bool_(), nullable=False),  # the prompt is the seeded fallback
            pa.field("attack_prompt", pa.string(), nullable=False),  # this round's user message to the target
            pa.field("on_topic", pa.bool_(), nullable=False),  # false: pruned before the target was asked
            pa.field("messages", pa.string(), nullable=False),  # JSON list the target was sent (whole history)
            pa.field("response", pa.string()),  # null when the target was not asked
            pa.field("finish_reason", pa.string()),
            pa.field("prompt_tokens", pa.int32(), nullable=False),
            pa.field("completion_tokens", pa.int32(), nullable=False),
            pa.field("latency_s", pa.float32(), nullable=False),
            pa.field("error", pa.string()),  # target error
            pa.field("risk_score", pa.float32()),  # critic; null when not judged
            pa.field("unsafe", pa.bool_()),
            pa.field("judge_error", pa.string()),
            pa.field(
                "status", pa.string(), nullable=False
            ),  # broken | continue | backtracked | pruned_off_topic | pruned_score | error | exhausted
        ]
    ),
)

SEVAL_ADAPTIVE_METRICS = VersionedSchema(
    "seval_adaptive_metrics",
    1,
    pa.schema(
        [
            pa.field("metric", pa.string(), nullable=False),  # asr_by_round | break_round_share
            pa.field("model", pa.string(), nullable=False),
            pa.field("critic_id", pa.string(), nullable=False),
            pa.field("attack", pa.string(), nullable=False),
            pa.field("lang", pa.string(), nullable=False),  # "*" when not grouped by it
            pa.field("round", pa.int32(), nullable=False),
            pa.field("n", pa.int64(), nullable=False),
            pa.field("value", pa.float64()),
            pa.field("ci_low", pa.float64()),
            pa.field("ci_high", pa.float64()),
        ]
    ),
)

# ---------------------------------------------------------------- S-Eval suite generation (issue 4)

SEVAL_CANDIDATES = VersionedSchema(
    "seval_candidates",
    1,
    pa.schema(
        [
            pa.field("candidate_id", pa.string(), nullable=False),  # sha256(leaf, lang, seed, batch, item, text)[:24]
            pa.field("leaf_id", pa.string(), nullable=False),  # taxonomy leaf the tester was asked to target
            pa.field("dimension", pa.string(), nullable=False),  # its level-1 id
            pa.field("lang", pa.string(), nullable=False),
            pa.field("prompt", pa.string(), nullable=False),
            pa.field("kind", pa.string(), nullable=False),  # base | translation
            pa.field("from_id", pa.string()),  # translations: the candidate_id translated from
            pa.field("generator", pa.string(), nullable=False),  # tester model spec
            pa.field("gen_seed", pa.int64(), nullable=False),
            pa.field("item_index", pa.int32(), nullable=False),  # position in the tester's answer
            pa.field("driver", pa.string(), nullable=False),  # diversity driver JSON ("" for translations)
            pa.field("gen_prompt_hash", pa.string(), nullable=False),  # identity of the generation/translation prompt
        ]
    ),
)

SEVAL_GENERATION_LOG = VersionedSchema(
    "seval_generation_log",
    1,
    pa.schema(
        [
            pa.field("group_id", pa.string(), nullable=False),  # one (leaf, lang, seed) tester job
            pa.field("leaf_id", pa.string(), nullable=False),
            pa.field("lang", pa.string(), nullable=False),
            pa.field("requests", pa.int32(), nullable=False),  # tester calls
            pa.field("errors", pa.int32(), nullable=False),  # calls that failed
            pa.field("tester_refusals", pa.int32(), nullable=False),  # answers that refused the whole task
            pa.field("parsed", pa.int32(), nullable=False),  # items kept by the parser
            pa.field("discarded", pa.int32(), nullable=False),  # items the parser dropped
            pa.field("kept", pa.int32(), nullable=False),  # candidates written
            pa.field("shortfall", pa.int32(), nullable=False),  # per_leaf - kept
            pa.field("discard_reasons", pa.string(), nullable=False),  # JSON {reason kind: count}
            pa.field("refusal_example", pa.string()),  # first refusing answer, for a human to read
            pa.field("completion_tokens", pa.int64(), nullable=False),
        ]
    ),
)

SEVAL_SELECTION_DROPS = VersionedSchema(
    "seval_selection_drops",
    1,
    pa.schema(
        [
            pa.field("prompt_uid", pa.string(), nullable=False),
            pa.field("strategy", pa.string(), nullable=False),  # selection strategy that dropped the row
            pa.field("reason", pa.string(), nullable=False),
            pa.field("leaf_id", pa.string(), nullable=False),
            pa.field("lang", pa.string(), nullable=False),
            pa.field("prompt", pa.string(), nullable=False),
        ]
    ),
)

SEVAL_GENERATED_SUITE = VersionedSchema(
    "seval_generated_suite",
    1,
    pa.schema(
        [
            *SEVAL_SUITE.schema,  # the evaluation flow reads these columns as a suite
            pa.field("leaf_id", pa.string(), nullable=False),
            pa.field("template_id", pa.string()),  # attack rows
            pa.field("from_id", pa.string()),  # translated base rows: the source candidate
            pa.field("generator", pa.string(), nullable=False),  # tester model spec
            pa.field("gen_seed", pa.int64(), nullable=False),
            pa.field("driver", pa.string(), nullable=False),
            pa.field("hardness", pa.float64()),  # share of reference models judged unsafe on the base prompt
            pa.field(
                "scores", pa.string(), nullable=False
            ),  # JSON: per-stage scores (hardness per ref, intent similarity, ...)
        ]
    ),
)

# ---------------------------------------------------------------- robust vision (issue 5)

TRAIN_EPOCHS = VersionedSchema(
    "train_epochs",
    1,
    pa.schema(
        [
            pa.field("run_id", pa.string(), nullable=False),
            pa.field("method", pa.string(), nullable=False),
            pa.field("arch", pa.string(), nullable=False),
            pa.field("dataset", pa.string(), nullable=False),
            pa.field("epoch", pa.int32(), nullable=False),
            pa.field("loss", pa.float64(), nullable=False),
            pa.field("train_clean_acc", pa.float64()),  # null when the method computes no clean logits
            pa.field("train_adv_acc", pa.float64()),  # null for standard training
            pa.field("probe_clean_acc", pa.float64(), nullable=False),  # fixed held-out batch
            pa.field("fgsm_acc", pa.float64(), nullable=False),
            pa.field("pgd_acc", pa.float64(), nullable=False),  # PGD-10
            pa.field("co", pa.bool_(), nullable=False),  # catastrophic overfitting flagged at this epoch
            pa.field("co_reason", pa.string(), nullable=False),
            pa.field("rolled_back", pa.bool_(), nullable=False),
            pa.field("evaluated", pa.string(), nullable=False),  # model | ema
            pa.field("samples_per_s", pa.float64()),
            pa.field("seconds", pa.float64()),
            pa.field("lr", pa.float64()),
        ]
    ),
)

ROBUSTNESS_RESULTS = VersionedSchema(
    "robustness_results",
    1,
    pa.schema(
        [
            pa.field(
                "row_key", pa.string(), nullable=False
            ),  # "<attack>|<eps>|<corruption>|<severity>", unique per run
            pa.field("model", pa.string(), nullable=False),
            pa.field("dataset", pa.string(), nullable=False),
            pa.field("attack", pa.string(), nullable=False),  # clean | fgsm | pgd | autoattack | ... | corruption
            pa.field("norm", pa.string()),
            pa.field("eps", pa.float64()),
            pa.field("corruption", pa.string()),
            pa.field("severity", pa.int32()),
            pa.field("n", pa.int64(), nullable=False),
            pa.field("correct", pa.int64(), nullable=False),
            pa.field("accuracy", pa.float64(), nullable=False),
            pa.field("seconds", pa.float64(), nullable=False),
        ]
    ),
)

# ---------------------------------------------------------------- detector robustness (issue 6)

_STATS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")

DETECTIONS = VersionedSchema(
    "detections",
    1,
    pa.schema(
        [
            pa.field("detector", pa.string(), nullable=False),  # the detector spec as given
            pa.field("domain", pa.string(), nullable=False),
            pa.field("split", pa.string(), nullable=False),
            pa.field("image_id", pa.int64(), nullable=False),
            # one row per image, also for images with no detections (so a re-run knows it is done)
            pa.field("category_ids", pa.list_(pa.int64()), nullable=False),  # the dataset's category ids
            pa.field("boxes", pa.list_(pa.list_(pa.float64(), 4)), nullable=False),  # COCO x, y, w, h in pixels
            pa.field("scores", pa.list_(pa.float64()), nullable=False),
            pa.field("seconds", pa.float64(), nullable=False),  # this image's share of its batch's inference time
        ]
    ),
)

DETECTION_METRICS = VersionedSchema(
    "detection_metrics",
    1,
    pa.schema(
        [
            pa.field("detector", pa.string(), nullable=False),
            pa.field("domain", pa.string(), nullable=False),
            *[pa.field(name, pa.float64(), nullable=False) for name in _STATS],  # -1 where COCO has no ground truth
            pa.field("images", pa.int64(), nullable=False),
            pa.field("annotations", pa.int64(), nullable=False),
            pa.field("detections", pa.int64(), nullable=False),
        ]
    ),
)

DETECTOR_LEADERBOARD = VersionedSchema(
    "detector_leaderboard",
    1,
    pa.schema(
        [
            pa.field("detector", pa.string(), nullable=False),
            pa.field("id_map", pa.float64(), nullable=False),  # AP (0.50:0.95) on the in-distribution domain
            pa.field("ood_map", pa.float64(), nullable=False),  # mean AP over the shifted domains evaluated
            pa.field("ood_domains", pa.int32(), nullable=False),
            pa.field("relative_drop", pa.float64()),  # (id - ood) / id
            pa.field("effective_robustness", pa.float64(), nullable=False),  # ood - (a + b * id)
            pa.field("trend_a", pa.float64(), nullable=False),
            pa.field("trend_b", pa.float64(), nullable=False),
            pa.field("trend", pa.string(), nullable=False),  # given | fitted
            pa.field("images_per_s", pa.float64()),  # inference throughput over this run's images
        ]
    ),
)

# ---------------------------------------------------------------- continuous evaluation (issue 7)

MODEL_LEADERBOARD = VersionedSchema(
    "model_leaderboard",
    1,
    pa.schema(
        [
            pa.field("card_key", pa.string(), nullable=False),  # the model card's key relative to the store root
            pa.field("etag", pa.string(), nullable=False),  # the card version evaluated ("" when unknown)
            pa.field("model_name", pa.string(), nullable=False),
            pa.field("kind", pa.string(), nullable=False),  # llm | classifier
            pa.field("evaluation", pa.string(), nullable=False),  # seval | robustness | fairness | speech
            pa.field("metric", pa.string(), nullable=False),  # safety_score, asr, adaptive_asr | clean, fgsm, pgd, ...
            pa.field("value", pa.float64()),
            pa.field("run_id", pa.string(), nullable=False),  # the evaluation run holding the details
            pa.field("evaluated_at", pa.string(), nullable=False),  # ISO 8601 UTC
        ]
    ),
)

# ---------------------------------------------------------------- critic labels and features (issue 13)

LABELS = VersionedSchema(
    "labels",
    1,
    pa.schema(
        [
            pa.field("label_id", pa.string(), nullable=False),  # sha256(source, prompt, response)[:20]
            pa.field("prompt", pa.string(), nullable=False),
            pa.field("response", pa.string(), nullable=False),
            pa.field("unsafe", pa.bool_()),  # null: harm unknown (a refusal-scorer non-refusal)
            pa.field("score", pa.float64()),  # graded harm in [0, 1] (mean of annotators); null for boolean labels
            pa.field("language", pa.string(), nullable=False),  # zh | en
            pa.field("category", pa.string(), nullable=False),  # harm category / dimension; "" when unknown
            pa.field(
                "source", pa.string(), nullable=False
            ),  # pyrit-harm:<category> | pyrit-refusal | written:<set> | ...
            pa.field("annotator_agreement", pa.float64()),  # share of annotators agreeing with the label; null if one
            pa.field("label_origin", pa.string(), nullable=False),  # human | llm-written
            pa.field("source_file", pa.string(), nullable=False),
            pa.field("row_no", pa.int32(), nullable=False),  # 1-based data row in the file
        ]
    ),
)

CRITIC_FEATURES = VersionedSchema(
    "critic_features",
    1,
    pa.schema(
        [
            pa.field("pair_hash", pa.string(), nullable=False),  # models/critics/features.pair_hash
            pa.field("layer", pa.int32(), nullable=False),
            pa.field("pooling", pa.string(), nullable=False),  # mean | last | max
            pa.field("vector", pa.list_(pa.float32()), nullable=False),
        ]
    ),
)

# ---------------------------------------------------------------- model provenance (issue 15)

FINGERPRINT = VersionedSchema(
    "fingerprint",
    1,
    pa.schema(
        [
            pa.field("model", pa.string(), nullable=False),  # the checkpoint's name in its run
            pa.field("layer", pa.string(), nullable=False),  # the fingerprinted conv (module name)
            pa.field("filter", pa.int32(), nullable=False),  # d of the D fingerprint filters
            pa.field("channel", pa.int32(), nullable=False),  # c: F^(uv)_{W_d} is a C-vector
            pa.field("u", pa.int32(), nullable=False),  # frequency on the layer's input grid
            pa.field("v", pa.int32(), nullable=False),
            pa.field("grid_m", pa.int32(), nullable=False),  # M×N: the grid the transform used
            pa.field("grid_n", pa.int32(), nullable=False),
            pa.field("real", pa.float64(), nullable=False),
            pa.field("imag", pa.float64(), nullable=False),
        ]
    ),
)

# The provenance flows (issue 15, phase 2): descendants made by ownership attacks, the
# scores of every suspect against every source per method, and the tracing verdicts.

FINGERPRINT_DESCENDANTS = VersionedSchema(
    "fingerprint_descendants",
    1,
    pa.schema(
        [
            pa.field("suspect", pa.string(), nullable=False),  # name of the descendant (key)
            pa.field("source", pa.string(), nullable=False),  # the attacked model's reference
            pa.field("attack", pa.string(), nullable=False),  # OWNERSHIP_ATTACKS spec (seed excluded)
            pa.field("seed", pa.int32(), nullable=False),
            pa.field("checkpoint", pa.string(), nullable=False),  # store key of its weights-only checkpoint
            pa.field("seconds", pa.float64(), nullable=False),
        ]
    ),
)

FINGERPRINT_SCORES = VersionedSchema(
    "fingerprint_scores",
    1,
    pa.schema(
        [
            pa.field("suspect", pa.string(), nullable=False),
            pa.field("source", pa.string(), nullable=False),
            pa.field("method", pa.string(), nullable=False),  # ours | weight_cosine | cka
            pa.field("score", pa.float64(), nullable=False),
        ]
    ),
)

FINGERPRINT_VERDICTS = VersionedSchema(
    "fingerprint_verdicts",
    1,
    pa.schema(
        [
            pa.field("suspect", pa.string(), nullable=False),
            pa.field("method", pa.string(), nullable=False),
            pa.field("traced_to", pa.string()),  # null: derived from none of the sources
            pa.field("score", pa.float64(), nullable=False),  # the best source's score
            pa.field("threshold", pa.float64(), nullable=False),
            pa.field("true_source", pa.string()),  # null: independent, or unknown (see known)
            pa.field("known", pa.bool_(), nullable=False),  # the truth is known (calibration pool)
            pa.field("correct", pa.bool_()),  # null when the truth is unknown
            pa.field("group", pa.string(), nullable=False),  # attack name, "independent" or "given"
        ]
    ),
)

# Attribute robustness, ImageNet-E style (issue 16). The contract between the editors
# (tasks/attributes/editors) and the evaluation (tasks/attributes/evaluate): objects with
# exact masks go in, one row per (object, attribute, level) comes out; both keyed so a
# rerun resumes without duplicates.

MASKED_OBJECTS = VersionedSchema(
    "masked_objects",
    1,
    pa.schema(
        [
            pa.field("object_id", pa.string(), nullable=False),  # unique in the dataset (key)
            pa.field("label", pa.string(), nullable=False),  # the dataset's class name
            pa.field("width", pa.int32(), nullable=False),
            pa.field("height", pa.int32(), nullable=False),
            pa.field("image_png", pa.binary(), nullable=False),  # H×W×3 RGB, PNG
            pa.field("mask_png", pa.binary(), nullable=False),  # H×W, 255 on the object, PNG
            pa.field("mask_source", pa.string(), nullable=False),  # coco-polygon|coco-rle|mask-file|grabcut|synthetic
            pa.field("box", pa.list_(pa.float64()), nullable=True),  # x, y, w, h the mask came from (grabcut)
            pa.field("source", pa.string(), nullable=False),  # file or dataset it came from
        ]
    ),
)

ATTRIBUTE_EDITS = VersionedSchema(
    "attribute_edits",
    1,
    pa.schema(
        [
            pa.field("edit_id", pa.string(), nullable=False),  # object_id|attribute|level|seed (key)
            pa.field("object_id", pa.string(), nullable=False),
            pa.field("label", pa.string(), nullable=False),
            pa.field("attribute", pa.string(), nullable=False),  # original|background|size|position|direction
            pa.field("level", pa.string(), nullable=False),  # the level asked for, e.g. "0.2", "45", "texture"
            pa.field("value", pa.float64(), nullable=False),  # the attribute value the edit realises
            pa.field("editor", pa.string(), nullable=False),  # canonical editor spec
            pa.field("seed", pa.int64(), nullable=False),
            pa.field("image_png", pa.binary(), nullable=False),
            pa.field("mask_png", pa.binary(), nullable=False),  # the object's exact mask after the edit
        ]
    ),
)

# one classifier's answer on one edited image (key ``pred_key`` = ``model|edit_id``)
ATTRIBUTE_PREDICTIONS = VersionedSchema(
    "attribute_predictions",
    1,
    pa.schema(
        [
            pa.field("pred_key", pa.string(), nullable=False),  # model|edit_id (key)
            pa.field("model", pa.string(), nullable=False),  # classifier spec as given
            pa.field("edit_id", pa.string(), nullable=False),
            pa.field("object_id", pa.string(), nullable=False),
            pa.field("label", pa.string(), nullable=False),
            pa.field("attribute", pa.string(), nullable=False),
            pa.field("level", pa.string(), nullable=False),
            pa.field("value", pa.float64(), nullable=False),  # the edit's realised attribute value
            pa.field("top5", pa.list_(pa.string()), nullable=False),  # the classifier's best classes, best first (≤ 5)
            pa.field("top5_prob", pa.list_(pa.float32()), nullable=False),  # their softmax probabilities
            pa.field("hit1", pa.bool_(), nullable=False),  # arg-max is one of the label's classes
            pa.field("hit5", pa.bool_()),  # any of the five best is; null when the classifier has < 5 classes
            pa.field("image_size", pa.int32(), nullable=False),  # side the image was resized to
        ]
    ),
)

# accuracy and drop vs the original per (model, attribute, level); level "all" pools an attribute's levels
ATTRIBUTE_LEADERBOARD = VersionedSchema(
    "attribute_leaderboard",
    1,
    pa.schema(
        [
            pa.field("row_key", pa.string(), nullable=False),  # model|attribute|level (key)
            pa.field("model", pa.string(), nullable=False),
            pa.field("attribute", pa.string(), nullable=False),  # original|background|size|position|direction|...
            pa.field("level", pa.string(), nullable=False),  # as in attribute_edits, or "all"
            pa.field("value_mean", pa.float64()),  # mean realised attribute value
            pa.field("objects", pa.int64(), nullable=False),  # objects with this edit and an original (paired)
            pa.field("images", pa.int64(), nullable=False),
            pa.field("top1", pa.float64(), nullable=False),
            pa.field("top5", pa.float64()),  # null when the classifier has < 5 classes
            pa.field("top1_original", pa.float64(), nullable=False),  # on the same objects' originals
            pa.field("drop_top1", pa.float64(), nullable=False),  # top1_original - top1
            pa.field("drop_low", pa.float64(), nullable=False),  # 95 % paired bootstrap interval of drop_top1
            pa.field("drop_high", pa.float64(), nullable=False),
            pa.field("drop_top5", pa.float64()),
            pa.field("skipped", pa.int64(), nullable=False),  # images whose label the classifier cannot name
        ]
    ),
)

# ---- Fairness of text classifiers (issue 17) -----------------------------------------------
# One row per text with its task label and protected attribute; the same schema for RedditBias,
# BUG, users' tables and the generated template set, so every method and metric reads one layout.

FAIRNESS_TEXTS = VersionedSchema(
    "fairness_texts",
    1,
    pa.schema(
        [
            pa.field("text_id", pa.string(), nullable=False),  # sha256(source, text, attribute, label)[:20] (key)
            pa.field("text", pa.string(), nullable=False),
            pa.field("label", pa.string(), nullable=False),  # the task class name
            pa.field("label_id", pa.int32(), nullable=False),  # index in the manifest's `classes`
            pa.field("attribute", pa.string(), nullable=False),  # protected group, e.g. female, black
            pa.field("split", pa.string(), nullable=False),  # train | test (hash of text_id, or the file's)
            pa.field("pair_id", pa.string(), nullable=True),  # rows differing only in the group term share it
            pa.field("source", pa.string(), nullable=False),  # redditbias:<group>, bug, eec, the file stem
            pa.field("row_no", pa.int32(), nullable=False),  # 1-based data row in the source file
        ]
    ),
)

# One row per epoch of a fairness fine-tuning run (flow fairness_train, stage ``epochs``); the
# stage's manifest is the run's completion mark (the checkpoint is written before it).
FAIRNESS_TRAIN_EPOCHS = VersionedSchema(
    "fairness_train_epochs",
    1,
    pa.schema(
        [
            pa.field("epoch", pa.int32(), nullable=False),  # (key)
            pa.field("run_id", pa.string(), nullable=False),
            pa.field("method", pa.string(), nullable=False),  # the method spec as given
            pa.field("dataset", pa.string(), nullable=False),
            pa.field("losses", pa.string(), nullable=False),  # JSON {loss name: epoch mean}; names vary by method
            pa.field("workers", pa.int32(), nullable=False),  # Ray Train workers
            pa.field("samples", pa.int64(), nullable=False),  # training samples of the whole run, all workers
            pa.field("seconds", pa.float64(), nullable=False),  # rank 0's training loop time
            pa.field("samples_per_s", pa.float64(), nullable=False),
        ]
    ),
)

# Metrics of fairness_evaluate, long format: one row per (model, dataset, group, metric), the
# group ``all`` for overall metrics; every value with its 95 % bootstrap interval when it has one.
FAIRNESS_METRICS = VersionedSchema(
    "fairness_metrics",
    1,
    pa.schema(
        [
            pa.field("row_key", pa.string(), nullable=False),  # model|dataset|group|metric (key)
            pa.field("model", pa.string(), nullable=False),  # fairness_train run id, or gen(run)>run for transfer
            pa.field("method", pa.string(), nullable=False),  # method spec (transfer: fairberts>target method)
            pa.field("dataset", pa.string(), nullable=False),  # ingest dataset id (test split), or the eec set
            pa.field("group", pa.string(), nullable=False),  # all, or an attribute value
            pa.field("metric", pa.string(), nullable=False),  # accuracy, eo_gap, flip_rate, leakage, tpr …
            pa.field("value", pa.float64()),  # null when undefined (e.g. a gap with one group)
            pa.field("lo", pa.float64()),
            pa.field("hi", pa.float64()),
            pa.field("n", pa.int64(), nullable=False),  # rows (pair groups for flip_rate) it is computed on
        ]
    ),
)

# The fairness leaderboard: one row per (model, dataset).
FAIRNESS_LEADERBOARD = VersionedSchema(
    "fairness_leaderboard",
    1,
    pa.schema(
        [
            pa.field("row_key", pa.string(), nullable=False),  # model|dataset (key)
            pa.field("model", pa.string(), nullable=False),
            pa.field("method", pa.string(), nullable=False),
            pa.field("dataset", pa.string(), nullable=False),
            pa.field("rows", pa.int64(), nullable=False),
            pa.field("accuracy", pa.float64()),
            pa.field("accuracy_lo", pa.float64()),
            pa.field("accuracy_hi", pa.float64()),
            pa.field("macro_f1", pa.float64()),
            pa.field("dp_gap", pa.float64()),
            pa.field("eo_gap", pa.float64()),
            pa.field("eo_gap_lo", pa.float64()),
            pa.field("eo_gap_hi", pa.float64()),
            pa.field("fped", pa.float64()),
            pa.field("fned", pa.float64()),
            pa.field("flip_rate", pa.float64()),  # on the eec template set; null without one
            pa.field("leakage", pa.float64()),  # probe accuracy minus majority rate
        ]
    ),
)

# Episodes of fewshot_adapt (issue 18): one row per (method, set, k, seed); the robustness
# columns (adapted − unadapted prototype head on the same episode and query images) are null
# when the run had robustness off.
FEWSHOT_EPISODES = VersionedSchema(
    "fewshot_episodes",
    1,
    pa.schema(
        [
            pa.field("row_key", pa.string(), nullable=False),  # method|set|k|seed (key)
            pa.field("method", pa.string(), nullable=False),  # method spec
            pa.field("set", pa.string(), nullable=False),  # few-shot set name
            pa.field("k", pa.int64(), nullable=False),  # shots per class
            pa.field("seed", pa.int64(), nullable=False),
            pa.field("accuracy", pa.float64(), nullable=False),  # on the set's n_query query images
            pa.field("n_query", pa.int64(), nullable=False),
            pa.field("fit_seconds", pa.float64(), nullable=False),
            pa.field("info", pa.string(), nullable=False),  # JSON: the method's picked hyper-parameters
            pa.field("robust_accuracy", pa.float64()),  # adapted model, mean over the attacks
            pa.field("delta_attack", pa.float64()),  # adapted − unadapted, mean over the attacks
            pa.field("delta_corruption", pa.float64()),  # mean corruption accuracy, adapted − unadapted
            pa.field("mce_vs_baseline", pa.float64()),  # Σ corruption errors adapted / unadapted
            pa.field("deltas", pa.string()),  # JSON: adapted − unadapted per attack/corruption metric
        ]
    ),
)

# The few-shot leaderboard: one row per (method, set, k), mean ± std over seeds.
FEWSHOT_LEADERBOARD = VersionedSchema(
    "fewshot_leaderboard",
    1,
    pa.schema(
        [
            pa.field("row_key", pa.string(), nullable=False),  # method|set|k (key)
            pa.field("method", pa.string(), nullable=False),
            pa.field("set", pa.string(), nullable=False),
            pa.field("k", pa.int64(), nullable=False),
            pa.field("seeds", pa.int64(), nullable=False),  # episodes averaged
            pa.field("accuracy", pa.float64(), nullable=False),  # mean over seeds
            pa.field("accuracy_std", pa.float64(), nullable=False),  # population std over seeds
            pa.field("fit_seconds", pa.float64(), nullable=False),  # mean
            pa.field("robust_accuracy", pa.float64()),  # means over seeds; null without robustness
            pa.field("delta_attack", pa.float64()),
            pa.field("delta_attack_std", pa.float64()),
            pa.field("delta_corruption", pa.float64()),
            pa.field("mce_vs_baseline", pa.float64()),
            # JSON: mean over seeds per delta key of the episodes (attack, corruption, and with an
            # edits set attr:<attribute> / drop:<attribute>); absent in stages written before it
            pa.field("deltas", pa.string()),
        ]
    ),
)


# ---- Speech utterances (issue 19) ------------------------------------------------------------
# One row per utterance: espeak-ng synthesis, pocketsphinx-testdata, users' LibriSpeech folders.

SPEECH_UTTERANCES = VersionedSchema(
    "speech_utterances",
    1,
    pa.schema(
        [
            pa.field(
                "utt_id", pa.string(), nullable=False
            ),  # sha256(domain|source, speaker, transcript, file)[:20] (key)
            pa.field("audio", pa.binary(), nullable=False),  # 16 kHz mono 16-bit little-endian PCM, no header
            pa.field("samples", pa.int64(), nullable=False),
            pa.field("transcript", pa.string(), nullable=False),  # lower-case words (normalise_text)
            pa.field("phones", pa.string(), nullable=False),  # space-separated IPA symbols, "|" between words
            pa.field("domain", pa.string(), nullable=False),  # espeak, espeak-unseen, real, the folder name
            pa.field("speaker", pa.string(), nullable=False),  # espeak voice@rate/pitch or the speaker id
            pa.field("source", pa.string(), nullable=False),  # espeak, the file stem
        ]
    ),
)

# One row per epoch of an ASR training run (flow asr_train, stage ``epochs``); the manifest marks
# the run done (the checkpoint is written before it).
ASR_TRAIN_EPOCHS = VersionedSchema(
    "asr_train_epochs",
    1,
    pa.schema(
        [
            pa.field("epoch", pa.int32(), nullable=False),  # (key)
            pa.field("run_id", pa.string(), nullable=False),
            pa.field("method", pa.string(), nullable=False),  # ASR_METHODS spec as given
            pa.field("model", pa.string(), nullable=False),  # ASR_MODELS spec
            pa.field("dataset", pa.string(), nullable=False),  # ingested speech dataset id
            pa.field("losses", pa.string(), nullable=False),  # JSON {loss name: epoch mean}
            pa.field("workers", pa.int32(), nullable=False),  # Ray Train workers
            pa.field("utterances", pa.int64(), nullable=False),  # training utterances of the run, all workers
            pa.field("seconds", pa.float64(), nullable=False),  # rank 0's training loop time
            pa.field("utterances_per_s", pa.float64(), nullable=False),
        ]
    ),
)

# asr_evaluate, one row per (model, domain, utterance): the transcripts and their edit counts.
ASR_RESULTS = VersionedSchema(
    "asr_results",
    1,
    pa.schema(
        [
            pa.field("row_key", pa.string(), nullable=False),  # model|domain|utt_id (key)
            pa.field("model", pa.string(), nullable=False),  # asr_train run id
            pa.field("method", pa.string(), nullable=False),
            pa.field("dataset", pa.string(), nullable=False),  # ingested speech dataset id
            pa.field("domain", pa.string(), nullable=False),  # the row's domain, or dataset domain + "+" shift
            pa.field("shift", pa.string(), nullable=False),  # SPEECH_SHIFTS spec ("clean" = none)
            pa.field("utt_id", pa.string(), nullable=False),
            pa.field("reference", pa.string(), nullable=False),  # normalised transcript
            pa.field("hypothesis", pa.string(), nullable=False),  # lexicon-decoded words
            pa.field("hyp_phones", pa.string(), nullable=False),  # greedy CTC phones, space-separated
            pa.field("word_errors", pa.int32(), nullable=False),  # word edit distance
            pa.field("words", pa.int32(), nullable=False),  # reference words
            pa.field("phone_errors", pa.int32(), nullable=False),  # phone edit distance ("|" left out)
            pa.field("phones", pa.int32(), nullable=False),  # reference phones
            pa.field("audio_s", pa.float64(), nullable=False),  # utterance length (after the shift)
            pa.field("decode_s", pa.float64(), nullable=False),  # its share (by length) of the part's decode time
        ]
    ),
)

# The ASR leaderboard: one row per (model, domain); corpus WER/PER with 95 % bootstrap interval.
ASR_LEADERBOARD = VersionedSchema(
    "asr_leaderboard",
    1,
    pa.schema(
        [
            pa.field("row_key", pa.string(), nullable=False),  # model|domain (key)
            pa.field("model", pa.string(), nullable=False),
            pa.field("method", pa.string(), nullable=False),
            pa.field("domain", pa.string(), nullable=False),
            pa.field("ood", pa.bool_(), nullable=False),  # not the clean evaluation of a shifted dataset
            pa.field("utterances", pa.int64(), nullable=False),
            pa.field("wer", pa.float64()),
            pa.field("wer_lo", pa.float64()),
            pa.field("wer_hi", pa.float64()),
            pa.field("per", pa.float64()),
            pa.field("rtf", pa.float64()),  # real-time factor: decode seconds / audio seconds
        ]
    ),
)


# ---- Device measurements (issue 20) --------------------------------------------------------
# One row per Gummel-sweep point of a lateral BJT (emitter grounded): the `gummel` dataset kind.
# Units are SI (V, A, K, µm for geometry); `clipped` rows hit the instrument compliance and are
# kept for the record but excluded from fits (data/device/gummel.py).

GUMMEL = VersionedSchema(
    "gummel",
    1,
    pa.schema(
        [
            pa.field("point_id", pa.string(), nullable=False),  # sha256(device, T, V_CE/V_CB, V_sub, V_BE)[:20] (key)
            pa.field("device_id", pa.string(), nullable=False),
            pa.field("width_um", pa.float64(), nullable=True),  # emitter width [µm]
            pa.field("length_um", pa.float64(), nullable=True),  # base length [µm]
            pa.field("temperature_k", pa.float64(), nullable=False),  # [K]
            pa.field("v_be", pa.float64(), nullable=False),  # [V]
            pa.field("v_ce", pa.float64(), nullable=True),  # [V] (one of v_ce / v_cb is set)
            pa.field("v_cb", pa.float64(), nullable=True),  # [V]
            pa.field("v_sub", pa.float64(), nullable=False),  # substrate (handle) bias [V]
            pa.field("i_c", pa.float64(), nullable=False),  # collector current magnitude [A]
            pa.field("i_b", pa.float64(), nullable=False),  # base current magnitude [A]
            pa.field("compliance_a", pa.float64(), nullable=True),  # instrument compliance [A]
            pa.field("noise_floor_a", pa.float64(), nullable=True),  # instrument noise floor [A]
            pa.field("clipped", pa.bool_(), nullable=False),  # at compliance: excluded from fits
            pa.field("source", pa.string(), nullable=False),  # file name
            pa.field("row_no", pa.int32(), nullable=False),  # 1-based data row in the source file
        ]
    ),
)

# Fitted compact-model parameters of device_fit (issue 20, phase 2): one row per fit, i.e. per
# (device, T, V_sub curve or the joint fit across V_sub, model). The parameter vectors are
# lists in the model's own order (`param_names`), so both models share one schema.
DEVICE_FITS = VersionedSchema(
    "device_fits",
    1,
    pa.schema(
        [
            pa.field("row_key", pa.string(), nullable=False),  # device|T|v_sub or joint|model (key)
            pa.field("device_id", pa.string(), nullable=False),
            pa.field("temperature_k", pa.float64(), nullable=False),  # [K]
            pa.field("v_sub", pa.float64()),  # [V] of a single-curve fit; null for the joint fit
            pa.field("v_subs", pa.list_(pa.float64()), nullable=False),  # [V] the curves fitted together
            pa.field("model", pa.string(), nullable=False),  # compact-model registry name
            pa.field("param_names", pa.list_(pa.string()), nullable=False),
            pa.field("units", pa.list_(pa.string()), nullable=False),
            pa.field("values", pa.list_(pa.float64()), nullable=False),
            pa.field("stderr", pa.list_(pa.float64()), nullable=False),  # Jacobian standard errors; 0 = held fixed
            pa.field("free", pa.list_(pa.bool_()), nullable=False),  # fitted (true) or held fixed
            pa.field("rms_decades", pa.float64(), nullable=False),  # RMS log10 error, I_C and I_B above 10× floor
            pa.field("rms_decades_ic", pa.float64(), nullable=False),  # the same, I_C only
            pa.field("ic_decades", pa.float64(), nullable=False),  # decades of I_C those points span
            pa.field("n_points", pa.int64(), nullable=False),  # points the fit used (I_C and I_B counted apart)
            pa.field("n_excluded", pa.int64(), nullable=False),  # clipped or below 3× the noise floor
            pa.field("n_clipped", pa.int64(), nullable=False),  # of those: at compliance
            pa.field("cost", pa.float64(), nullable=False),  # final weighted least-squares cost
            pa.field("seconds", pa.float64(), nullable=False),  # fit wall time
        ]
    ),
)
