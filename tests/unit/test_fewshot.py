"""Few-shot adaptation (issue 18, phase 1): the attention pool, episodes, the feature cache,
SAFE's training and blend, every registered method, and the robustness deltas.

All on a seeded random ``tiny_cnn`` backbone and a synthetic three-class set whose classes
differ by where a bright square sits, so the pool has something spatial to learn.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trustflow.data.vision.datasets import ArrayDataset
from trustflow.errors import ConfigError
from trustflow.models.vision.attention_pool import AttentionPool2d, PooledBackbone, build_backbone
from trustflow.tasks.fewshot.data import FewShotSet, load_fewshot_set, make_episode, query_indices
from trustflow.tasks.fewshot.evaluate import Caches, make_task, predict, run_episode
from trustflow.tasks.fewshot.features import FeatureCache
from trustflow.tasks.fewshot.methods.base import FEWSHOT_METHODS, AdaptConfig, BlendFeatures, build_method
from trustflow.tasks.fewshot.robustness import robustness_deltas, subset


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def squares(n_per_class: int, seed: int, split: str) -> ArrayDataset:
    """Three classes: a bright 4×4 square in the top-left, top-right or bottom half, on noise."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 0.4, size=(3 * n_per_class, 1, 12, 12)).astype(np.float32)
    y = np.repeat(np.arange(3, dtype=np.int64), n_per_class)
    for i, c in enumerate(y):
        r, col = [
            (rng.integers(0, 3), rng.integers(0, 3)),
            (rng.integers(0, 3), rng.integers(5, 8)),
            (rng.integers(6, 8), rng.integers(2, 6)),
        ][c]
        x[i, 0, r : r + 4, col : col + 4] = 1.0
    return ArrayDataset("squares", split, x, y, 3, (0.3,), (0.3,), ("tl", "tr", "bottom"))


@pytest.fixture(scope="module")
def data() -> FewShotSet:
    return FewShotSet("squares", squares(30, 0, "train"), squares(10, 1, "test"))


def backbone() -> PooledBackbone:
    return build_backbone("tiny_cnn?width=8&size=16")


def test_packaged_efficientnet_with_the_pool_head_gives_its_average_pooled_features() -> None:
    bb = build_backbone("efficientnet_lite0?size=64")  # ImageNet weights from the package
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        maps = bb.trunk(x)
        pooled = bb(x)
    assert maps.shape == (2, 1280, 2, 2) and bb.dim == 1280
    assert torch.allclose(pooled, maps.mean((2, 3)), atol=1e-6, rtol=1e-6)


def _grad(p: torch.Tensor) -> torch.Tensor:
    assert p.grad is not None
    return p.grad


def test_attention_pool_starts_as_exact_average_pooling() -> None:
    torch.manual_seed(0)
    fmap = torch.randn(4, 64, 3, 3) * 3
    pool = AttentionPool2d(64, grid=3, heads=8)
    assert torch.allclose(pool(fmap), fmap.mean((2, 3)), atol=1e-6, rtol=1e-6)
    # another map size: the positional embedding is resized, still average pooling
    other = torch.randn(2, 64, 5, 4)
    assert torch.allclose(pool(other), other.mean((2, 3)), atol=1e-6, rtol=1e-6)


def test_attention_pool_query_gets_a_gradient_at_the_start_unlike_with_a_zero_key() -> None:
    torch.manual_seed(0)
    fmap = torch.randn(5, 16, 2, 2)
    pool = AttentionPool2d(16, grid=2, heads=2)
    pool(fmap).pow(2).sum().backward()
    for name in ("pos", "q.weight", "v.weight", "out.weight"):
        assert _grad(dict(pool.named_parameters())[name]).abs().sum() > 0, name
    # the key's gradient is proportional to the query, zero at the start: it moves from step 2
    assert _grad(pool.k.weight).abs().sum() == 0
    stuck = AttentionPool2d(16, grid=2, heads=2)
    with torch.no_grad():
        stuck.k.weight.zero_()  # query and key both zero: neither could ever train
    stuck(fmap).pow(2).sum().backward()
    assert _grad(stuck.q.weight).abs().sum() == 0 and _grad(stuck.k.weight).abs().sum() == 0


def test_attention_pool_is_not_a_plain_mean_once_trained() -> None:
    torch.manual_seed(0)
    pool = AttentionPool2d(16, grid=2, heads=2)
    with torch.no_grad():
        pool.q.weight.normal_()
    fmap = torch.randn(3, 16, 2, 2)
    assert not torch.allclose(pool(fmap), fmap.mean((2, 3)), atol=1e-3)


def test_episodes_are_deterministic_by_seed_and_disjoint(data: FewShotSet) -> None:
    a, b, c = make_episode(data, 4, 0), make_episode(data, 4, 0), make_episode(data, 4, 1)
    assert np.array_equal(a.support, b.support) and np.array_equal(a.val, b.val)
    assert not np.array_equal(a.support, c.support)
    assert np.array_equal(a.query, c.query)  # the same query set for every episode
    assert not set(a.support) & set(a.val)
    assert np.bincount(data.train.y[a.support]).tolist() == [4, 4, 4]
    assert np.bincount(data.train.y[a.val]).tolist() == [4, 4, 4]
    assert len(query_indices(data, 7)) == 7 and len(query_indices(data, None)) == 30


def test_episode_refuses_more_shots_than_the_pool_holds(data: FewShotSet) -> None:
    with pytest.raises(ConfigError, match=r"squares: class 0 has 30 training images"):
        make_episode(data, 28, 0)
    with pytest.raises(ConfigError, match="unknown few-shot set 'cifar100'"):
        load_fewshot_set("cifar100")


def test_lfw_subset_is_two_balanced_classes() -> None:
    lfw = load_fewshot_set("lfw-subset")
    assert lfw.train.x.shape[1:] == (1, 25, 25) and lfw.num_classes == 2
    assert np.bincount(lfw.train.y).tolist() == [60, 60] and np.bincount(lfw.test.y).tolist() == [40, 40]


def test_textile_is_conformal_clip_datas_three_classes_split_60_40() -> None:
    """``conformal-clip-data`` (requirements-nodeps.txt): 1,000 nominal, 500 local, 500 global."""
    tex = load_fewshot_set("textile", size=16)
    assert tex.train.classes == ("nominal", "local", "global") and tex.train.x.shape[1:] == (3, 16, 16)
    assert np.bincount(tex.train.y).tolist() == [600, 300, 300] and np.bincount(tex.test.y).tolist() == [400, 200, 200]
    assert tex.train.x.min() >= 0.0 and tex.train.x.max() <= 1.0 and tex.train.x.std() > 0.05
    assert len(make_episode(tex, 16, 0).support) == 48
    with pytest.raises(ConfigError, match="textile takes no path"):
        load_fewshot_set("textile:/tmp")


def test_cached_maps_equal_recomputed_ones_and_are_computed_once(data: FewShotSet) -> None:
    bb = backbone()
    cache = FeatureCache(bb.trunk, data.train.x, batch_size=7)
    idx = np.array([5, 3, 40, 3])
    maps = cache.maps(idx)
    with torch.no_grad():
        direct = bb.trunk(torch.from_numpy(data.train.x[idx]))
    assert torch.allclose(maps, direct, atol=1e-6)
    assert cache.computed == 3
    assert torch.equal(cache.maps(idx[::-1].copy()), maps.flip(0))
    assert cache.computed == 3  # nothing recomputed
    off = FeatureCache(bb.trunk, data.train.x, enabled=False)
    off.maps(idx)
    off.maps(idx)
    assert off.computed == 8


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_safe_trains_only_the_pool_copy(data: FewShotSet) -> None:
    bb = backbone()
    before = _state(bb)
    task = make_task(bb, data, make_episode(data, 4, 0), Caches.of(bb, data).train)
    model = build_method("safe?alpha=1").fit(task, AdaptConfig(epochs=5))
    after = bb.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "backbone changed"
    assert model.trunk is bb.trunk
    blend = model.head.featurize
    assert isinstance(blend, BlendFeatures) and isinstance(blend.tuned, torch.nn.Module)
    tuned = dict(blend.tuned.named_parameters())
    orig = dict(bb.pool.named_parameters())
    assert set(tuned) == {
        "pos",
        "q.weight",
        "q.bias",
        "k.weight",
        "k.bias",
        "v.weight",
        "v.bias",
        "out.weight",
        "out.bias",
    }
    for name in ("pos", "q.weight", "k.weight", "v.weight", "out.weight"):
        assert not torch.equal(tuned[name], orig[name]), f"{name} did not train"


def test_safe_with_alpha_zero_is_the_unadapted_model(data: FewShotSet) -> None:
    bb = backbone()
    caches = Caches.of(bb, data)
    episode = make_episode(data, 2, 0)
    task = make_task(bb, data, episode, caches.train)
    safe = build_method("safe?alpha=0").fit(task, AdaptConfig(epochs=3))
    proto = build_method("prototype").fit(task, AdaptConfig())
    assert torch.equal(predict(safe, caches.test, episode.query), predict(proto, caches.test, episode.query))
    with torch.no_grad():
        x = torch.from_numpy(data.test.x[:6])
        assert torch.equal(safe(x), proto(x))


def test_safe_learns_the_spatial_task_better_than_its_start(data: FewShotSet) -> None:
    bb = backbone()
    caches = Caches.of(bb, data)
    episode = make_episode(data, 8, 0, n_query=None)
    start = run_episode("prototype", bb, data, episode, caches).accuracy
    tuned = run_episode("safe?alpha=4&lr=0.003", bb, data, episode, caches, AdaptConfig(epochs=30)).accuracy
    assert tuned > start


@pytest.mark.parametrize("method", FEWSHOT_METHODS.names())
def test_every_method_fits_predicts_and_leaves_the_backbone_alone(data: FewShotSet, method: str) -> None:
    bb = backbone()
    before = _state(bb)
    caches = Caches.of(bb, data)
    episode = make_episode(data, 2, 0, n_query=12)
    result = run_episode(method, bb, data, episode, caches, AdaptConfig(epochs=2), keep_model=True)
    assert 0.0 <= result.accuracy <= 1.0
    model = result.model
    assert model is not None
    logits = predict(model, caches.test, episode.query)
    assert logits.shape == (12, 3) and torch.isfinite(logits).all()
    with torch.no_grad():  # through the cache or through the images: the same classifier
        direct = model(torch.from_numpy(data.test.x[episode.query]))
    assert torch.allclose(direct, logits, atol=1e-4)
    assert all(torch.equal(before[k], v) for k, v in bb.state_dict().items())
    assert model.frozen_trunk == (method != "full_finetune")


def test_robustness_deltas_compare_with_the_unadapted_backbone(data: FewShotSet) -> None:
    bb = backbone()
    caches = Caches.of(bb, data)
    episode = make_episode(data, 4, 0, n_query=15)
    task = make_task(bb, data, episode, caches.train)
    proto = build_method("prototype").fit(task, AdaptConfig())
    out = robustness_deltas(
        proto,
        proto,
        subset(data.test, episode.query),
        attacks=("clean", ("fgsm", {"eps": 0.1})),
        corruptions=["gaussian_noise"],
        severities=(2,),
    )
    assert out["delta"] == {"clean": 0.0, "fgsm linf eps=0.1": 0.0, "corruption": 0.0}
    assert out["adapted"]["robust_accuracy"]["fgsm linf eps=0.1"] <= out["adapted"]["clean_accuracy"]
    tuned = build_method("safe?alpha=4&lr=0.003").fit(task, AdaptConfig(epochs=10))
    other = robustness_deltas(
        tuned,
        proto,
        subset(data.test, episode.query),
        attacks=("clean",),
        corruptions=["gaussian_noise"],
        severities=(2,),
    )
    assert other["delta"]["clean"] == pytest.approx(
        other["adapted"]["clean_accuracy"] - other["unadapted"]["clean_accuracy"]
    )
