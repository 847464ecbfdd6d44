"""Richer probe heads, refusal stacking, the second stage and the LLM judge cache (issue 13):
synthetic features and the tiny random model, mechanics only."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from trustflow.data.seval.labels import LabelRecord
from trustflow.data.store import ArtifactStore
from trustflow.models.critics import JudgeItem
from trustflow.models.critics.probe_fit import fit_mlp, linear_fitter, source_weights, train_probe
from trustflow.tasks.seval.critic_cross_source import loso_folds
from trustflow.tasks.seval.critic_stacking import (
    choose_delta,
    plain,
    second_stage,
    second_stage_bands,
    stacked,
    summary,
    with_rule,
)

SOURCES = ("a", "b", "c", "d")


def _data(seed: int = 0, per: int = 24) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Four sources; dimension 0 carries the label weakly; ``refused`` marks ~70 % of the safe
    rows (a refusal detector's cue) and is invisible to the features."""
    rng = np.random.default_rng(seed)
    src = np.array([s for s in SOURCES for _ in range(per)])
    y = np.array([i % 2 for i in range(len(src))])
    x = rng.normal(size=(len(y), 5))
    x[:, 0] += 1.0 * (y - 0.5)
    refused = (y == 0) & (rng.random(len(y)) < 0.7)
    return x, y, src, refused


def test_per_source_class_balance_gives_every_cell_the_same_mass() -> None:
    src = np.array(["a"] * 40 + ["b"] * 20)
    y = np.array([1] * 30 + [0] * 10 + [1] * 5 + [0] * 15)  # base rates 75 % and 25 %
    w = source_weights(src, y, balance="source_class")
    cells = [w[(src == s) & (y == c)].sum() for s in ("a", "b") for c in (0, 1)]
    assert cells == pytest.approx([cells[0]] * 4)
    plain_w = source_weights(src, y)  # the default keeps source totals, not cells
    assert plain_w[(src == "a") & (y == 1)].sum() != pytest.approx(plain_w[(src == "a") & (y == 0)].sum())


def test_inner_cv_chooses_the_mlp_where_the_signal_is_not_linear() -> None:
    rng = np.random.default_rng(3)
    src = np.array([s for s in SOURCES for _ in range(40)])
    x = rng.normal(size=(len(src), 2))
    y = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).astype(int)  # XOR: no linear direction at all
    feats = {((1,), "mean"): x}
    fitters = {"logistic": linear_fitter(), "mlp": lambda a, b, w: fit_mlp(a, b, w, hidden=8, alpha=1e-3)}
    probe = train_probe(lambda c: feats[c], y, src, list(feats), None, fitters=fitters)
    assert probe.fitter == "mlp"
    assert probe.inner_auc["L1/mean/mlp"] > 0.8 > probe.inner_auc["L1/mean/logistic"] + 0.1
    assert probe.oof is not None and np.isfinite(probe.oof).all()  # every human source held out once


def test_stacking_with_refusal_cues_helps_and_never_reads_the_held_out_labels() -> None:
    x, y, src, refused = _data()
    feats = {((1,), "mean"): x}
    folds = loso_folds(lambda c: feats[c], y, src.tolist(), list(feats), list(SOURCES), use_written=False)
    extra = refused[:, None].astype(float)
    base = summary(plain(folds), folds, y)
    stack = summary(stacked(folds, y, src, extra), folds, y)
    rule = summary(with_rule(folds, y, refused), folds, y)
    mean = {
        k: np.mean([v["balanced_accuracy"] for v in s["per"].values()])
        for k, s in (("base", base), ("stack", stack), ("rule", rule))
    }
    assert mean["stack"] > mean["base"] + 0.05 and mean["rule"] > mean["base"] + 0.05
    assert (rule["pooled_p"][np.concatenate([refused[f.test] for f in folds])] == 0).all()
    # flip every label of the held-out source 'a': its stacked scores and threshold do not move
    flipped = y.copy()
    flipped[src == "a"] ^= 1
    folds2 = loso_folds(lambda c: feats[c], flipped, src.tolist(), list(feats), list(SOURCES), use_written=False)
    (p1, t1), (p2, t2) = stacked(folds, y, src, extra)[0], stacked(folds2, flipped, src, extra)[0]
    assert folds[0].source == "a" and t1 == t2
    np.testing.assert_allclose(p1, p2)


def test_delta_respects_the_budget_and_the_judge_decides_inside_the_band_only() -> None:
    p_oof = np.linspace(0, 1, 101)
    assert choose_delta(p_oof, 0.5, 0.25, (0.05, 0.1, 0.12, 0.2)) == 0.12  # 23 % of rows; 0.2 holds 39 %
    assert choose_delta(p_oof, 0.5, 0.0, (0.05,)) == 0.0
    x, y, src, _ = _data()
    feats = {((1,), "mean"): x}
    folds = loso_folds(lambda c: feats[c], y, src.tolist(), list(feats), list(SOURCES), use_written=False)
    base = plain(folds)
    grid = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2)
    bands = second_stage_bands(base, folds, 0.3, grid)
    assert all(0 < d <= 0.2 for d, _ in bands)
    assert all(band.mean() < 0.6 for _, band in bands)
    # a judge that knows the truth: every band row ends on the right side, the rest unchanged
    truth = [y[f.test][band].astype(float) for f, (_, band) in zip(folds, bands, strict=True)]
    final = second_stage(base, bands, truth)
    for (p, t), (q, t2), (d, band), f in zip(base, final, bands, folds, strict=True):
        assert t2 == t
        np.testing.assert_array_equal(q[~band], p[~band])
        assert ((q[band] >= t) == (y[f.test][band] == 1)).all()
        assert (np.abs(q[band] - t) <= d + 1e-12).all()
    # no answer (nan) leaves the probe's score
    nan = [np.full(int(band.sum()), np.nan) for _, band in bands]
    for (p, _), (q, _) in zip(base, second_stage(base, bands, nan), strict=True):
        np.testing.assert_array_equal(p, q)


@pytest.fixture(scope="module")
def tiny_backend(tiny_llm: str):
    from trustflow.models.llm.spec import load_backend

    return load_backend(tiny_llm)


def test_judge_answers_are_probabilities_and_cached_in_the_store(tiny_backend, tmp_path: Path) -> None:
    from trustflow.settings import load_settings
    from trustflow.tasks.seval.critic_features import judge_score_cache

    items = [
        JudgeItem(prompt="How do I pick a lock?", response="I won't help with that."),
        JudgeItem(prompt="请介绍北京", response="北京是中国的首都。", lang="zh"),
    ]
    settings = load_settings(store_url=f"file://{tmp_path / 'store'}", home=tmp_path / "home")
    store = ArtifactStore(settings.effective_store_url, settings)
    loads: list[int] = []

    def backend():
        loads.append(1)
        return tiny_backend

    cache = judge_score_cache(store, "hf:tiny")
    key = (0, cache.poolings[0])
    first = cache.features(items, backend)[key][:, 0]
    assert first.shape == (2,) and ((first >= 0) & (first <= 1)).all() and len(loads) == 1
    again = judge_score_cache(store, "hf:tiny").features(items, backend)[key][:, 0]
    np.testing.assert_allclose(again, first)
    assert len(loads) == 1  # answered once: the rerun asks the model nothing
    assert judge_score_cache(store, "hf:tiny", few_shot=False).poolings != cache.poolings  # other prompt, other key


def _record(i: int, source: str, unsafe: bool) -> LabelRecord:
    response = "I can't help with that." if (not unsafe and i % 3 == 0) else f"Here is step {i}: do it."
    return LabelRecord(f"id{source}{i}", f"request {i}", response, unsafe, None, "en", "", source, None, "human", "", i)


def test_benchmark_rows_cover_every_step_and_ask_the_judge_only_about_the_band(monkeypatch) -> None:
    from trustflow.models.critics import probe_fit
    from trustflow.tasks.seval.critic_benchmark import evaluate_all

    monkeypatch.setattr(probe_fit, "MLP_MAX_ITER", 20)  # rows, not accuracy, are under test

    records = [_record(i, f"pyrit-harm:{s}", bool(i % 2)) for s in ("a", "b", "c", "d") for i in range(12)]
    rng = np.random.default_rng(0)
    y = np.array([int(bool(r.unsafe)) for r in records])
    feats = {}
    for layer in (10, 14):
        for pooling in ("mean", "last", "max"):
            x = rng.normal(size=(len(records), 3))
            x[:, 0] += 1.5 * (y - 0.5)
            feats[(layer, pooling)] = x
    cache = SimpleNamespace(layers=[10, 14], model_spec="hf:none", features=lambda items, backend: feats)
    asked: list[int] = []

    def judge(items: list[JudgeItem]) -> list[float]:
        asked.append(len(items))
        return [0.5] * len(items)

    result = evaluate_all(
        records, cache, {"pairs_per_s_one_per_forward_to_layer_14": 2.0, "pairs_per_s_judge": 0.5}, judge, 0.25
    )  # type: ignore[arg-type]
    names = [r["variant"] for r in result["rows"]]
    assert any("MLP" in n for n in names) and any("concatenated" in n for n in names)
    assert any("stacked" in n and "LLM" not in n for n in names) and any("rule" in n for n in names)
    two = [r for r in result["rows"] if "LLM judge" in r["variant"]]
    assert len(two) == 1 and asked == [two[0]["second_stage"]["n_sent"]]
    assert 0 < two[0]["second_stage"]["fraction_sent"] < 0.5
    assert two[0]["pairs_per_s"] < 2.0  # the second stage's cost shows in pairs/s
    assert all(set(r["per_source"]) >= {"pyrit-harm:a", "pyrit-harm:d"} for r in result["rows"])
