"""HTML reports built from a local store holding the stages real flows write.

``populate_store`` is also used by ``tests/integration/test_report_chromium.py``: it writes
one run per flow kind with the real schemas and stage names, and returns the numbers a
reader must find on the pages, formatted the way the pages show them.
"""

from __future__ import annotations

import base64
import io
import os
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from trustflow.data import schemas as S
from trustflow.data.store import ArtifactStore, StageRef
from trustflow.errors import StageNotFound, StoreError

EVIL = '<script>alert("pwned")</script>'
DETECT_RUN = "detect-0a1b2c3d4e5f"
INFER_RUN = "infer-coco-5f4e3d2c1b0a"
ROBUST_RUN = "eval-9f8e7d6c5b4a"
TRAIN_RUN = "train-fgsm_law-123456abcdef"
SEVAL_RUN = "seval-abcdef012345"
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC).isoformat()


def png(title: str, values: list[float]) -> bytes:
    """A small real matplotlib PNG, like the flows write next to their stages."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 2.5))
    ax.plot(range(len(values)), values, marker="o")
    ax.set_title(title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=60)
    plt.close(fig)
    return buf.getvalue()


def _write(
    store: ArtifactStore,
    flow: str,
    run: str,
    stage: str,
    schema: S.VersionedSchema,
    rows: list[dict[str, Any]],
    keys: list[str],
    attrs: dict[str, Any] | None = None,
) -> None:
    store.write_stage(StageRef(flow, run, stage), schema, pa.Table.from_pylist(rows, schema=schema.schema), keys, attrs)


def _plot(store: ArtifactStore, flow: str, run: str, name: str, data: bytes) -> None:
    store.write_bytes_atomic(store.path("runs", flow, run, "plots", name), data)


def _detector(store: ArtifactStore, expected: dict[str, Any]) -> None:
    flow = "detector_evaluate"
    stats = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
    ap = {
        ("mtcnn", "original"): 0.4123,
        ("mtcnn", "cartoon"): 0.3012,
        ("mtcnn", "sketch"): 0.2730,
        (EVIL, "original"): 0.2500,
        (EVIL, "cartoon"): 0.1000,
        (EVIL, "sketch"): 0.0800,
    }
    metrics = []
    for (det, dom), value in ap.items():
        row = {k: round(value * (1.4 if k == "AP50" else 1.0), 4) for k in stats}
        row.update({"detector": det, "domain": dom, "APs": -1.0, "images": 40, "annotations": 97, "detections": 311})
        metrics.append(row)
    _write(
        store,
        flow,
        DETECT_RUN,
        "metrics",
        S.DETECTION_METRICS,
        metrics,
        ["detector", "domain"],
        {"dataset_id": "coco-5f4e3d2c1b0a"},
    )
    board = []
    for det in ("mtcnn", EVIL):
        id_map, ood = ap[(det, "original")], (ap[(det, "cartoon")] + ap[(det, "sketch")]) / 2
        board.append(
            {
                "detector": det,
                "id_map": id_map,
                "ood_map": ood,
                "ood_domains": 2,
                "relative_drop": (id_map - ood) / id_map,
                "effective_robustness": ood - (0.0 + 0.45 * id_map),
                "trend_a": 0.0,
                "trend_b": 0.45,
                "trend": "given",
                "images_per_s": 52.25 if det == "mtcnn" else None,
            }
        )
    _write(
        store,
        flow,
        DETECT_RUN,
        "leaderboard",
        S.DETECTOR_LEADERBOARD,
        board,
        ["detector"],
        {"dataset_id": "coco-5f4e3d2c1b0a"},
    )
    plot = png("OOD vs ID mAP", [0.41, 0.28])
    _plot(store, flow, DETECT_RUN, "id_vs_ood.png", plot)
    _plot(store, flow, DETECT_RUN, "per_domain.png", png("AP per domain", [0.41, 0.30, 0.27]))
    detections = [
        {
            "detector": "mtcnn",
            "domain": dom,
            "split": "val",
            "image_id": i,
            "category_ids": [1] * n,
            "boxes": [[1.0, 2.0, 3.0, 4.0]] * n,
            "scores": [0.9] * n,
            "seconds": 0.02,
        }
        for dom in ("original", "cartoon")
        for i, n in enumerate([2, 0, 1])
    ]
    _write(store, flow, INFER_RUN, "detections", S.DETECTIONS, detections, ["detector", "domain", "split", "image_id"])
    # (0.3012 + 0.2730) / 2 = 0.2871; drop (0.4123 - 0.2871) / 0.4123 = 30.37%; ER 0.2871 - 0.45 * 0.4123 = +0.1016
    expected["detector"] = ["0.412", "0.287", "30.4%", "+0.102", "52.2", "0.301", "0.273", "n/a"]
    expected["detector_plot"] = plot


def _robustness(store: ArtifactStore, expected: dict[str, Any]) -> None:
    eps = 8 / 255
    base = {
        "model": "run:" + TRAIN_RUN,
        "dataset": "digits",
        "n": 400,
        "seconds": 1.5,
        "norm": None,
        "eps": None,
        "corruption": None,
        "severity": None,
    }
    rows = [
        {**base, "attack": "clean", "eps": 0.0, "correct": 392, "accuracy": 0.98},
        {**base, "attack": "fgsm", "norm": "linf", "eps": eps, "correct": 249, "accuracy": 0.6225},
        {**base, "attack": "pgd", "norm": "linf", "eps": eps, "correct": 171, "accuracy": 0.4263},
    ]
    for corruption, accs in (("gaussian_noise", [0.91, 0.83]), ("fog", [0.95, 0.89])):
        for sev, acc in enumerate(accs, start=1):
            rows.append(
                {
                    **base,
                    "attack": "corruption",
                    "corruption": corruption,
                    "severity": sev,
                    "correct": int(acc * 400),
                    "accuracy": acc,
                }
            )
    for r in rows:
        r["row_key"] = f"{r['attack']}|{r['eps']}|{r['corruption']}|{r['severity']}"
    _write(
        store,
        "robustness_evaluate",
        ROBUST_RUN,
        "results",
        S.ROBUSTNESS_RESULTS,
        rows,
        ["row_key"],
        {"model": base["model"], "dataset": "digits"},
    )
    # mean corruption accuracy (0.87 + 0.92) / 2 = 0.895
    expected["robustness"] = ["0.980", "0.623", "0.426", "8/255", "0.895", "0.910", "0.830"]


def _training(store: ArtifactStore, expected: dict[str, Any]) -> None:
    rows = []
    for epoch, (clean, fgsm, pgd, co) in enumerate(
        [(0.71, 0.41, 0.32, False), (0.82, 0.95, 0.02, True), (0.88, 0.52, 0.3917, False)]
    ):
        rows.append(
            {
                "run_id": TRAIN_RUN,
                "method": "fgsm_law",
                "arch": "small_cnn",
                "dataset": "digits",
                "epoch": epoch,
                "loss": 1.2 - epoch * 0.3,
                "train_clean_acc": clean - 0.05,
                "train_adv_acc": fgsm - 0.1,
                "probe_clean_acc": clean,
                "fgsm_acc": fgsm,
                "pgd_acc": pgd,
                "co": co,
                "co_reason": "FGSM acc 0.95 > clean; PGD 0.02" if co else "",
                "rolled_back": co,
                "evaluated": "model",
                "samples_per_s": 1834.0,
                "seconds": 4.2,
                "lr": 0.1,
            }
        )
    _write(
        store,
        "adversarial_train",
        TRAIN_RUN,
        "epochs",
        S.TRAIN_EPOCHS,
        rows,
        ["epoch"],
        {"job": {"method": "fgsm_law", "epochs": 3, "workers": 2, "co_policy": "rollback"}},
    )
    _plot(
        store, "adversarial_train", TRAIN_RUN, "accuracy_per_epoch.png", png("accuracy per epoch", [0.32, 0.02, 0.39])
    )
    store.write_bytes_atomic(store.path("runs", "adversarial_train", TRAIN_RUN, "model", "best.pt"), b"\0" * 2048)
    expected["training"] = ["0.880", "0.392", "rolled back: FGSM acc 0.95 &gt; clean; PGD 0.02", "1,834"]


def _seval(store: ArtifactStore, expected: dict[str, Any]) -> None:
    flow, critic, models = "seval_evaluate", "probe:qwen2.5-1.5b@abc123", ["pkg:smollm2-135m", "pkg:qwen2.5-1.5b"]
    suite = [
        {
            "prompt_uid": f"{s}:{lang}:{i}",
            "prompt_id": str(i),
            "set": s,
            "attack": None if s == "base_risk" else "dan",
            "base_id": str(i if s == "base_risk" else i - 10),
            "lang": lang,
            "dimension": "dim-01",
            "prompt": f"prompt {i}",
            "source": "seed-suite",
        }
        for s in ("base_risk", "attack")
        for lang in ("en", "zh")
        for i in ([1, 2] if s == "base_risk" else [11, 12])
    ]
    _write(
        store,
        flow,
        SEVAL_RUN,
        "suite",
        S.SEVAL_SUITE,
        suite,
        ["prompt_uid"],
        {"source": "seed-suite", "langs": ["en", "zh"], "seed": 0},
    )
    responses, judgements = [], []
    for model in models:
        for k, p in enumerate(suite):
            rid = f"{model}|{p['prompt_uid']}"
            carried = {c: p[c] for c in ("prompt_uid", "set", "attack", "base_id", "lang", "dimension")}
            responses.append(
                {
                    "response_id": rid,
                    "model": model,
                    "gen_config_hash": "cfg1",
                    **carried,
                    "prompt": p["prompt"],
                    "response": "I can't help with that.",
                    "finish_reason": "stop",
                    "prompt_tokens": 12,
                    "completion_tokens": 8,
                    "latency_s": 0.25,
                    "error": "timeout" if k == 0 and model == models[0] else None,
                }
            )
            failed = k == 1
            judgements.append(
                {
                    "response_id": rid,
                    "critic_id": critic,
                    "critic_prompt_hash": "h1",
                    "model": model,
                    **carried,
                    "risk_score": None if failed else 0.1 * k,
                    "unsafe": None if failed else k % 3 == 0,
                    "risk_tags": [],
                    "explanation": "",
                    "raw_output": "",
                    "judge_error": "unparseable" if failed else None,
                }
            )
    _write(
        store, flow, SEVAL_RUN, "responses", S.SEVAL_RESPONSES, responses, ["model", "gen_config_hash", "prompt_uid"]
    )
    _write(
        store,
        flow,
        SEVAL_RUN,
        "judgements",
        S.SEVAL_JUDGEMENTS,
        judgements,
        ["response_id", "critic_id", "critic_prompt_hash"],
    )
    metrics = []
    for model, score in zip(models, (87.53, 64.2), strict=True):

        def m(metric: str, value: float, model: str = model, **by: str) -> dict[str, Any]:
            return {
                "metric": metric,
                "model": model,
                "critic_id": critic,
                "dimension": by.get("dimension", "*"),
                "lang": by.get("lang", "*"),
                "attack": by.get("attack", "*"),
                "n": 8,
                "value": value,
                "ci_low": value - 7.41,
                "ci_high": value + 5.18,
            }

        metrics += [
            m("safety_score", score),
            m("safety_score", score - 3.0, lang="en"),
            m("safety_score", score + 3.0, lang="zh"),
            m("safety_score", score - 1.0, dimension="dim-01", lang="en"),
            m("asr", 100 - score, attack="dan"),
            m("adaptive_asr", 31.25),
            m("judge_error_rate", 12.5),
        ]
    _write(
        store,
        flow,
        SEVAL_RUN,
        "metrics",
        S.SEVAL_METRICS,
        metrics,
        ["metric", "model", "critic_id", "dimension", "lang", "attack"],
    )
    board = [
        {
            "model": model,
            "critic_id": critic,
            "safety_score": score,
            "safety_score_ci_low": score - 7.41,
            "safety_score_ci_high": score + 5.18,
            "asr": 100 - score,
            "asr_ci_low": 90 - score,
            "asr_ci_high": 110 - score,
            "adaptive_asr": 31.25,
            "adaptive_asr_ci_low": 20.0,
            "adaptive_asr_ci_high": 45.0,
            "judge_error_rate": 12.5,
            "judge_error_rate_ci_low": 5.0,
            "judge_error_rate_ci_high": 25.0,
            "judgements": 8,
        }
        for model, score in zip(models, (87.53, 64.2), strict=True)
    ]
    _write(store, flow, SEVAL_RUN, "leaderboard", S.SEVAL_LEADERBOARD, board, ["model", "critic_id"])
    _plot(store, flow, SEVAL_RUN, "safety_heatmap.png", png("safety", [87.5, 64.2]))
    _plot(store, flow, SEVAL_RUN, "asr_per_attack.png", png("asr", [12.5, 35.8]))
    # 87.53 → 87.5 [80.12, 92.71]; ASR 12.47; judge errors 12.5; adaptive 31.25 → 31.2 (round half even)
    expected["seval"] = ["87.5", "80.1–92.7", "12.5", "35.8", "64.2", "31.2", "84.5", "90.5"]


def populate_store(store: ArtifactStore) -> dict[str, Any]:
    """One realistic run per flow kind; returns the numbers each page must show."""
    expected: dict[str, Any] = {}
    _detector(store, expected)
    _robustness(store, expected)
    _training(store, expected)
    _seval(store, expected)
    return expected


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.srcs: list[str] = []
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name == "src":
                self.srcs.append(value or "")
            if name == "href":
                self.hrefs.append(value or "")


def parse(page: str) -> _Tags:
    parser = _Tags()
    parser.feed(page)
    return parser


@pytest.fixture()
def filled(local_settings: Any) -> tuple[ArtifactStore, dict[str, Any]]:
    store = ArtifactStore(settings=local_settings)
    return store, populate_store(store)


def _self_contained(page: str) -> None:
    tags = parse(page)
    assert "script" not in tags.tags and "link" not in tags.tags and "iframe" not in tags.tags
    assert all(s.startswith("data:image/png;base64,") for s in tags.srcs)
    assert all(h.startswith("#") for h in tags.hrefs)


def test_detector_run_page_shows_numbers_escapes_names_and_embeds_plots(
    filled: tuple[ArtifactStore, dict[str, Any]],
) -> None:
    from trustflow.tasks.report import build_run_report

    store, expected = filled
    page = build_run_report(store, DETECT_RUN)
    for text in expected["detector"]:
        assert text in page, text
    assert "<script>" not in page and "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;" in page
    assert "data:image/png;base64," + base64.b64encode(expected["detector_plot"]).decode() in page
    assert "coco-5f4e3d2c1b0a" in page and "detection_metrics v1" in page and "detector_evaluate" in page
    _self_contained(page)


def test_inference_run_page_summarises_detections(filled: tuple[ArtifactStore, dict[str, Any]]) -> None:
    from trustflow.tasks.report import build_run_report

    store, _ = filled
    page = build_run_report(store, f"detector_evaluate/{INFER_RUN}")
    assert "Inference" in page and "ms / image" in page and ">20.0<" in page and ">0.900<" in page


def test_robustness_training_and_seval_pages(filled: tuple[ArtifactStore, dict[str, Any]]) -> None:
    from trustflow.tasks.report import build_run_report

    store, expected = filled
    for run, key in ((ROBUST_RUN, "robustness"), (TRAIN_RUN, "training"), (SEVAL_RUN, "seval")):
        page = build_run_report(store, run)
        for text in expected[key]:
            assert text in page, f"{run}: {text}"
        assert page.count("data:image/png;base64,") == (0 if key == "robustness" else 2 if key == "seval" else 1)
        _self_contained(page)
    seval = build_run_report(store, SEVAL_RUN)
    assert "probe:qwen2.5-1.5b@abc123" in seval and "seed-suite" in seval and "generation errors" in seval
    training = build_run_report(store, TRAIN_RUN)
    assert "model/best.pt" in training and "2.0 KiB" in training


def test_leaderboard_page_combines_every_flow(filled: tuple[ArtifactStore, dict[str, Any]]) -> None:
    from trustflow.tasks.report import build_leaderboard_report

    store, expected = filled
    page = build_leaderboard_report(store)
    for heading in (
        "S-Eval safety leaderboard",
        "Detector robustness leaderboards",
        "Robustness evaluations",
        "Adversarial training runs",
    ):
        assert f">{heading}</h2>" in page
    for text in (
        "87.5",
        "80.1–92.7",
        "0.412",
        "+0.102",
        "0.980",
        "0.426",
        "pgd linf ε=8/255",
        "0.895",
        "0.392",
        TRAIN_RUN,
        ROBUST_RUN,
    ):
        assert text in page, text
    assert "<script>" not in page
    assert page.index("pkg:smollm2-135m") < page.index("pkg:qwen2.5-1.5b")  # best safety first
    _self_contained(page)


def test_generic_fallback_lists_stages_of_an_unknown_flow(local_settings: Any) -> None:
    from trustflow.tasks.report import build_run_report

    store = ArtifactStore(settings=local_settings)
    rows = [{"table": f"t{i}", "rows": 1000 * i, "schema_name": "x", "schema_version": 1} for i in range(8)]
    _write(store, "custom_flow", "run-1", "things", S.DATASET_SUMMARY, rows, ["table"], {"note": "<b>bold</b>"})
    page = build_run_report(store, "run-1")
    assert "first 5 of 8 rows" in page and "7,000" not in page and "4,000" in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in page and "<b>bold" not in page


def test_generation_ingest_and_continuous_pages(local_settings: Any) -> None:
    from trustflow.tasks.report import build_leaderboard_report, build_run_report

    store = ArtifactStore(settings=local_settings)
    suite = [
        {
            "prompt_uid": f"base_risk:{lang}:{i}",
            "prompt_id": str(i),
            "set": "base_risk",
            "attack": None,
            "base_id": str(i),
            "lang": lang,
            "dimension": "dim-02",
            "prompt": f"p{i}",
            "source": "suite-abc",
            "leaf_id": "dim-02.1",
            "template_id": None,
            "from_id": None,
            "generator": "pkg:qwen2.5-1.5b",
            "gen_seed": 0,
            "driver": "{}",
            "hardness": h,
            "scores": "{}",
        }
        for lang, i, h in (("en", 1, 0.5), ("en", 2, 0.25), ("zh", 3, None))
    ]
    _write(
        store,
        "seval_generate",
        "suite-abc",
        "suite",
        S.SEVAL_GENERATED_SUITE,
        suite,
        ["prompt_uid"],
        {"shortfall": 4, "tester": "pkg:qwen2.5-1.5b"},
    )
    log = [
        {
            "group_id": f"g{i}",
            "leaf_id": "dim-02.1",
            "lang": "en",
            "requests": 3,
            "errors": 1,
            "tester_refusals": 0,
            "parsed": 9,
            "discarded": 2,
            "kept": 7,
            "shortfall": 1,
            "discard_reasons": "{}",
            "refusal_example": None,
            "completion_tokens": 1500,
        }
        for i in range(2)
    ]
    _write(store, "seval_generate", "suite-abc", "generation_log", S.SEVAL_GENERATION_LOG, log, ["group_id"])
    drops = [
        {
            "prompt_uid": f"u{i}",
            "strategy": "dedup",
            "reason": "near duplicate",
            "leaf_id": "dim-02.1",
            "lang": "en",
            "prompt": "x",
        }
        for i in range(3)
    ]
    _write(
        store,
        "seval_generate",
        "suite-abc",
        "selection_drops",
        S.SEVAL_SELECTION_DROPS,
        drops,
        ["prompt_uid", "strategy"],
    )
    page = build_run_report(store, "suite-abc")
    assert ">0.38<" in page and ">3,000<" in page and ">14<" in page and "dedup" in page and "pkg:qwen2.5-1.5b" in page

    _write(
        store,
        "ingest",
        "imagefolder-123",
        "images",
        S.IMAGEFOLDER_IMAGES,
        [
            {
                "path": "a/1.png",
                "split": "train",
                "label": "a",
                "label_id": 0,
                "width": 8,
                "height": 8,
                "image_bytes": b"x" * 3000,
                "sha256": "0",
            }
        ],
        ["path"],
        {"classes": ["a"], "splits": ["train"]},
    )
    _write(
        store,
        "ingest",
        "imagefolder-123",
        "summary",
        S.DATASET_SUMMARY,
        [{"table": "images", "rows": 1, "schema_name": "imagefolder_images", "schema_version": 1}],
        ["table"],
        {"kind": "imagefolder", "source": "/data/faces", "fingerprint": "f" * 64},
    )
    page = build_run_report(store, "imagefolder-123")
    assert "/data/faces" in page and "imagefolder_images" in page and '["a"]' in page.replace("&quot;", '"')

    board = [
        {
            "card_key": "models/m.yaml",
            "etag": "e1",
            "model_name": "digits-cnn",
            "kind": "classifier",
            "evaluation": "robustness",
            "metric": metric,
            "value": value,
            "run_id": "eval-1",
            "evaluated_at": when,
        }
        for metric, value, when in (("clean", 0.5, "2025-01-01T00:00:00Z"), ("clean", 0.9712, "2025-02-01T00:00:00Z"))
    ]
    board[1]["etag"] = "e2"
    _write(
        store,
        "continuous_eval",
        "models",
        "leaderboard",
        S.MODEL_LEADERBOARD,
        board,
        ["card_key", "etag", "evaluation", "metric"],
    )
    page = build_leaderboard_report(store)
    assert "Continuously evaluated models" in page and "0.971" in page and "0.500" not in page


def test_an_unreadable_stage_costs_a_note_not_the_page(filled: tuple[ArtifactStore, dict[str, Any]]) -> None:
    from trustflow.tasks.report import build_leaderboard_report, build_run_report

    store, _ = filled
    manifest = store.require_manifest(StageRef("robustness_evaluate", ROBUST_RUN, "results"))
    part = Path(store.path("runs", "robustness_evaluate", ROBUST_RUN, "results", "parts", manifest.parts[0].name))
    part.write_bytes(b"not parquet")
    page = build_run_report(store, ROBUST_RUN)
    assert "could not be read" in page and "Stages and manifests" in page
    board = build_leaderboard_report(store)
    assert "could not be read" in board and "87.5" in board and "0.412" in board


def test_empty_store_leaderboard_says_so(local_settings: Any) -> None:
    from trustflow.tasks.report import build_leaderboard_report

    page = build_leaderboard_report(ArtifactStore(settings=local_settings))
    assert "no S-Eval evaluation in this store" in page and "no robustness evaluation in this store" in page


def test_unknown_run_id_names_close_matches(filled: tuple[ArtifactStore, dict[str, Any]]) -> None:
    from trustflow.tasks.report import build_run_report

    store, _ = filled
    with pytest.raises(
        StageNotFound, match=r"no run 'detect-0a1b2c3d4e5e' in file://.*did you mean: .*detect-0a1b2c3d4e5f"
    ):
        build_run_report(store, "detect-0a1b2c3d4e5e")
    with pytest.raises(StageNotFound, match=r"no run 'zzz' .*; 5 runs exist"):
        build_run_report(store, "zzz")
    with pytest.raises(StoreError, match="invalid flow name '../..'"):
        build_run_report(store, "../../etc")
    with pytest.raises(StoreError, match="invalid run id 'no such run'"):
        build_run_report(store, "no such run")


def test_store_url_credentials_are_not_printed() -> None:
    from trustflow.tasks.report.html import public_url

    assert public_url("s3://AKIA:secret@bucket/prefix?x=1") == "s3://bucket/prefix"
    assert public_url("file:///tmp/store") == "file:///tmp/store"


def test_write_report_is_atomic_and_replaces(tmp_path: Path) -> None:
    from trustflow.tasks.report import write_report

    out = tmp_path / "reports" / "x.html"
    write_report("<p>one</p>", out)
    write_report("<p>two</p>", out)
    assert out.read_text() == "<p>two</p>" and os.listdir(out.parent) == ["x.html"]


def test_cli_report_writes_the_page_and_prints_its_path(
    filled: tuple[ArtifactStore, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import typer
    from typer.testing import CliRunner

    from trustflow.cli.report import register

    store, _ = filled
    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)  # two commands, so typer keeps the command name
    monkeypatch.setenv("TRUSTFLOW_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    result = runner.invoke(app, ["report", ROBUST_RUN, "--store", store.url])
    assert result.exit_code == 0, result.output
    path = Path(result.output.strip())
    assert path == tmp_path / "home" / "reports" / f"{ROBUST_RUN}.html" and "0.426" in path.read_text()
    result = runner.invoke(app, ["report", "leaderboard", "--store", store.url, "--out", str(tmp_path / "lb.html")])
    assert result.exit_code == 0 and (tmp_path / "lb.html").exists()
    result = runner.invoke(app, ["report", "nope", "--store", store.url])
    assert result.exit_code == 1 and "no run 'nope'" in result.output
