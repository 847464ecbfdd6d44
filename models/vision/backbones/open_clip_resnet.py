"""OpenAI-CLIP ResNets through ``open_clip``, split at their own ``AttentionPool2d``.

This is the backbone SAFE was written for: CLIP's ResNet image tower ends in an attention
pool (the spatial mean token queries the H·W tokens of the last map, one multi-head step,
then ``c_proj``), and SAFE fine-tunes exactly that module. The trunk is everything before it
(``stem`` and ``layer1``–``layer4``), the pool is CLIP's ``attnpool`` unchanged, so every few-shot
method, the feature cache and the robustness evaluation work on it as on the stand-ins.

Weights: no CLIP checkpoint is reachable offline here, so ``pretrained`` is a **local path**
(an open_clip / OpenAI state dict as ``.safetensors`` or a weights-only torch file, optionally
under ``state_dict``; TorchScript archives are not read: convert them once with open_clip).
Left empty, the real architecture is built with seeded random weights — for tests of the
mechanics only, never for figures. Only the image tower is used: the methods build image
prototypes; zero-shot text prompts would need the text tower and its tokenizer (not wired).

``size`` is the input side (a multiple of 32): the attention pool's positional embedding is
made for ``size/32``; a checkpoint made for another size gets the spatial part of its embedding
bilinearly resized, as CLIP does for other resolutions. ViT towers are not offered: their
"pooling" is the class token inside the transformer, not a separable layer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import nn

from trustflow.errors import InputError
from trustflow.models.vision.attention_pool import BACKBONES, PooledBackbone, Prepare
from trustflow.models.weights_only import load_weights_only
from trustflow.registry import Options

ClipResNet = Literal["RN50", "RN101", "RN50x4", "RN50x16", "RN50x64"]


class OpenClipOptions(Options):
    model: ClipResNet = "RN50"
    size: int = Field(224, ge=32, le=896)
    pretrained: str = ""  # local checkpoint path; empty = seeded random weights (mechanics only)
    seed: int = 0

    @field_validator("size")
    @classmethod
    def _multiple_of_32(cls, size: int) -> int:
        if size % 32:
            raise ValueError(f"size must be a multiple of 32 (the ResNet's stride), got {size}")
        return size


class _ClipResNetTrunk(nn.Module):
    """CLIP's ModifiedResNet without its attention pool: images → the last NCHW map."""

    def __init__(self, visual: nn.Module) -> None:
        super().__init__()
        self.visual = visual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = self.visual
        x = v.stem(x)  # type: ignore[operator]
        for layer in (v.layer1, v.layer2, v.layer3, v.layer4):
            x = layer(x)  # type: ignore[operator]
        return x


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    """A CLIP state dict from a local file, never unpickling arbitrary objects."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise InputError(f"open_clip_resnet pretrained={path}: file not found")
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        state: Any = load_file(str(file))
    else:
        state = load_weights_only(file, accepted="a state dict (.safetensors or a weights-only torch file)")
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"open_clip_resnet pretrained={path}: not a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _fit_positional_embedding(state: dict[str, torch.Tensor], want: torch.Tensor) -> None:
    """Resize a checkpoint's attention-pool positional embedding to this model's grid."""
    key = "visual.attnpool.positional_embedding"
    have = state.get(key)
    if have is None or have.shape == want.shape:
        return
    channels = have.shape[1]
    old, new = int(round((have.shape[0] - 1) ** 0.5)), int(round((want.shape[0] - 1) ** 0.5))
    spatial = have[1:].T.reshape(1, channels, old, old).float()
    spatial = F.interpolate(spatial, size=(new, new), mode="bilinear", align_corners=False)
    state[key] = torch.cat([have[:1], spatial.reshape(channels, new * new).T.to(have.dtype)], 0)


@BACKBONES.register("open_clip_resnet", options=OpenClipOptions, example="open_clip_resnet?model=RN50&size=64")
def open_clip_resnet(
    *, model: ClipResNet = "RN50", size: int = 224, pretrained: str = "", seed: int = 0
) -> PooledBackbone:
    """CLIP ResNet image tower (open_clip): frozen trunk + CLIP's own attention pool."""
    try:
        import open_clip
        from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
    except ImportError as exc:  # pragma: no cover - installed by make install (requirements-nodeps.txt)
        raise InputError(f"open_clip_resnet needs open_clip_torch installed ({exc})") from None

    from trustflow.models.vision.layers import Normalize

    rng = torch.get_rng_state()
    torch.manual_seed(seed)
    try:
        clip = open_clip.create_model(model, pretrained=None, force_image_size=size)
    finally:
        torch.set_rng_state(rng)
    if pretrained:
        state = read_state_dict(pretrained)
        _fit_positional_embedding(state, clip.visual.attnpool.positional_embedding)
        visual_state = {k.removeprefix("visual."): v for k, v in state.items() if k.startswith("visual.")}
        try:
            clip.visual.load_state_dict(visual_state, strict=True)
        except RuntimeError as exc:  # missing/unexpected keys or other shapes
            detail = str(exc).splitlines()[1].strip() if "\n" in str(exc) else str(exc)
            raise InputError(
                f"open_clip_resnet pretrained={pretrained}: not a {model} image tower ({detail[:200]})"
            ) from None
    visual = clip.visual.float()
    pool = visual.attnpool
    visual.attnpool = nn.Identity()
    trunk = nn.Sequential(Prepare(size), Normalize(OPENAI_DATASET_MEAN, OPENAI_DATASET_STD), _ClipResNetTrunk(visual))
    return PooledBackbone(trunk, pool, f"open_clip_resnet_{model}", size, dim=int(pool.c_proj.out_features))
