"""torchvision MobileNetV2 with packaged ImageNet weights and the average-pool-initialised attention pool."""

from __future__ import annotations

from trustflow.models.vision.attention_pool import BACKBONES, BackboneOptions, PooledBackbone, assemble


@BACKBONES.register("mobilenet_v2", options=BackboneOptions)
def mobilenet_v2(*, size: int = 96, heads: int = 8, pretrained: bool = True) -> PooledBackbone:
    """torchvision MobileNetV2 (packaged ImageNet weights), its 1280-channel ``features``."""
    from trustflow.models.vision.architectures import mobilenet_v2 as build

    clf = build(1000, pretrained=pretrained)
    return assemble(clf.net.features, clf.normalize, 1280, "mobilenet_v2", size, heads)  # type: ignore[union-attr,arg-type]
