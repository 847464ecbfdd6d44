"""CLIP's own ResNet image tower (open_clip) as a few-shot backbone (issue 18).

No CLIP weights are reachable offline, so these test the mechanics on the real architecture
(RN50) with seeded random weights at 64 px: the trunk/pool split is CLIP's forward exactly,
SAFE trains only CLIP's ``attnpool`` (copy) and leaves the tower bit-identical, α = 0 is the
unadapted model, and a local checkpoint loads (its positional embedding resized to the grid).
"""

from __future__ import annotations

from pathlib import Path

import open_clip
import pytest
import torch

from trustflow.errors import InputError
from trustflow.models.vision.attention_pool import PooledBackbone, build_backbone
from trustflow.tasks.fewshot.data import FewShotSet, make_episode
from trustflow.tasks.fewshot.evaluate import Caches, make_task, predict
from trustflow.tasks.fewshot.methods.base import AdaptConfig, BlendFeatures, build_method
from trustflow.tests.unit.test_fewshot import squares

SPEC = "open_clip_resnet?model=RN50&size=64"


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data() -> FewShotSet:
    return FewShotSet("squares", squares(6, 0, "train"), squares(3, 1, "test"))


@pytest.fixture(scope="module")
def clip_backbone() -> PooledBackbone:
    return build_backbone(SPEC)


def _images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, 64, 64, generator=torch.Generator().manual_seed(seed))


def test_trunk_then_pool_is_clips_own_image_tower(clip_backbone: PooledBackbone) -> None:
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    torch.manual_seed(0)  # the backbone builds with seed 0: the same random weights
    reference = open_clip.create_model("RN50", pretrained=None, force_image_size=64).visual.eval()
    x = _images(2)
    mean = torch.tensor(OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_DATASET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        ours = clip_backbone(x)
        theirs = reference((x - mean) / std)
    assert ours.shape == (2, 1024) and clip_backbone.dim == 1024
    assert torch.allclose(ours, theirs, atol=1e-5, rtol=1e-4)
    assert type(clip_backbone.pool).__name__ == "AttentionPool2d"  # CLIP's class, not ours
    assert type(clip_backbone.pool).__module__.startswith("open_clip")


def test_safe_on_clip_trains_only_the_attention_pool_copy(clip_backbone: PooledBackbone, data: FewShotSet) -> None:
    before = {k: v.clone() for k, v in clip_backbone.state_dict().items()}
    caches = Caches.of(clip_backbone, data)
    episode = make_episode(data, 2, 0, n_query=6)
    task = make_task(clip_backbone, data, episode, caches.train)
    safe = build_method("safe?alpha=1").fit(task, AdaptConfig(epochs=2))
    assert all(torch.equal(before[k], v) for k, v in clip_backbone.state_dict().items()), "tower changed"
    blend = safe.head.featurize
    assert isinstance(blend, BlendFeatures)
    tuned = dict(blend.tuned.named_parameters())
    orig = dict(clip_backbone.pool.named_parameters())
    assert set(tuned) == {
        "positional_embedding",
        *(f"{p}_proj.{w}" for p in ("q", "k", "v", "c") for w in ("weight", "bias")),
    }
    moved = [name for name in tuned if not torch.equal(tuned[name], orig[name])]
    assert {"positional_embedding", "q_proj.weight", "c_proj.weight"} <= set(moved)

    unadapted = build_method("safe?alpha=0").fit(task, AdaptConfig(epochs=1))
    proto = build_method("prototype").fit(task, AdaptConfig())
    assert torch.equal(predict(unadapted, caches.test, episode.query), predict(proto, caches.test, episode.query))


def test_a_local_checkpoint_loads_and_its_pool_grid_is_resized(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    torch.manual_seed(7)
    source = open_clip.create_model("RN50", pretrained=None, force_image_size=96)  # 3×3 grid
    state = {k: v.contiguous() for k, v in source.state_dict().items() if k.startswith("visual.")}
    path = tmp_path / "rn50.safetensors"
    save_file(state, str(path))

    same = build_backbone(f"open_clip_resnet?model=RN50&size=96&pretrained={path}&seed=3")
    with torch.no_grad():
        x = _images(1, 1)
        mean = torch.tensor(open_clip.constants.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(open_clip.constants.OPENAI_DATASET_STD).view(1, 3, 1, 1)
        x96 = torch.nn.functional.interpolate(x, size=(96, 96), mode="bilinear", align_corners=False)
        assert torch.allclose(same(x), source.visual.eval()((x96 - mean) / std), atol=1e-5, rtol=1e-4)

    resized = build_backbone(f"open_clip_resnet?model=RN50&size=64&pretrained={path}")
    pos = resized.pool.positional_embedding
    assert pos.shape == (2 * 2 + 1, 2048)
    assert torch.equal(pos[0], state["visual.attnpool.positional_embedding"][0])  # the mean token's is kept
    assert torch.equal(resized.pool.c_proj.weight, state["visual.attnpool.c_proj.weight"])


def test_bad_checkpoints_are_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pt"
    with pytest.raises(InputError, match="nope.pt: file not found"):
        build_backbone(f"open_clip_resnet?model=RN50&size=64&pretrained={missing}")
    other = tmp_path / "other.pt"
    torch.save({"visual.conv1.weight": torch.zeros(1)}, other)
    with pytest.raises(InputError, match="other.pt: not a RN50 image tower"):
        build_backbone(f"open_clip_resnet?model=RN50&size=64&pretrained={other}")
    with pytest.raises(Exception, match="multiple of 32"):
        build_backbone("open_clip_resnet?size=70")
