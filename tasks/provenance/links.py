"""Function-preserving channel maps: where a conv's output channels can be permuted or scaled
with the inverse applied to the layers that read them, so the model computes the same logits.

A :class:`Link` is a producer (an ``nn.Conv2d`` or a fingerprinted layer) whose output reaches
its consumers only through channel-wise ops: an optional BatchNorm right after it, then
ReLU / max- and average-pooling / dropout / identity / flatten after a global pool. The
consumers are convs (single group), fingerprinted layers (the backbone conv *and* the
fingerprint module, which reads the same input) and linear layers after a global pool.
Links are found on the ``torch.fx`` graph of the model (a model fx cannot trace has none:
the attack then raises ``ConfigError``). A residual connection gives a producer a second
user, so it is not a link: that is what keeps the maps exact.

* permute (any link): producer output channels, the BatchNorm's channels, the consumers'
  input channels; a fingerprint module in the producer is permuted with it (its D filters
  when it adds directly, its projection's outputs otherwise).
* scale by a > 0 (links whose ops are positively homogeneous, i.e. no ReLU6/GELU/...): the
  producer's weights ×a; with a BatchNorm, its running mean ×a, variance ×a², eps ×a² (so its
  output is unchanged in eval mode) and then its affine weight and bias ×a; without one,
  the producer's bias ×a; the consumers' weights ×1/a. A fingerprint module in the producer
  is scaled with it (aW → aF); one in a consumer by 1/a, unless it normalises its input
  (``normalize``: it does not see the scale, so it is left alone).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from trustflow.errors import ConfigError
from trustflow.models.fingerprint.module import FingerprintConv, Fingerprinted

_HOMOGENEOUS_MODULES = (
    nn.ReLU,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.Dropout,
    nn.Identity,
    nn.LeakyReLU,
)
_CHANNELWISE_MODULES = (*_HOMOGENEOUS_MODULES, nn.ReLU6, nn.Hardswish, nn.SiLU, nn.GELU, nn.Sigmoid, nn.Tanh)
_HOMOGENEOUS_FUNCS = {F.relu, torch.relu, F.max_pool2d, F.avg_pool2d, F.adaptive_avg_pool2d, F.dropout}
_CHANNELWISE_FUNCS = {*_HOMOGENEOUS_FUNCS, F.relu6, F.silu, F.gelu, torch.sigmoid, torch.tanh, F.hardswish}
_HOMOGENEOUS_METHODS = {"relu", "relu_", "contiguous"}
_FLATTEN_FUNCS = {torch.flatten}


@dataclass
class Link:
    producer: str
    bn: str | None
    consumers: list[str] = field(default_factory=list)
    homogeneous: bool = True
    channels: int = 0


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        leaf = (Fingerprinted, FingerprintConv, nn.Linear, nn.Conv2d, nn.BatchNorm2d)
        return isinstance(m, leaf) or super().is_leaf_module(m, qualname)


def _out_channels(m: nn.Module) -> int:
    conv = m.layer if isinstance(m, Fingerprinted) else m
    assert isinstance(conv, nn.Conv2d)
    return int(conv.out_channels)


def find_links(model: nn.Module) -> list[Link]:
    """Every producer → consumers link of ``model`` (see the module docstring)."""
    try:
        graph = _Tracer().trace(model)
    except Exception as exc:  # noqa: BLE001 - fx raises many kinds; all mean "not traceable"
        raise ConfigError(f"cannot trace {type(model).__name__} with torch.fx ({type(exc).__name__}: {exc})") from None
    modules = dict(model.named_modules())

    def mod(node: fx.Node) -> nn.Module | None:
        return modules.get(str(node.target)) if node.op == "call_module" else None

    links: list[Link] = []
    for node in graph.nodes:
        producer = mod(node)
        producer_ok = isinstance(producer, Fingerprinted) or (isinstance(producer, nn.Conv2d) and producer.groups == 1)
        if producer is None or not producer_ok:
            continue
        link = Link(str(node.target), None, channels=_out_channels(producer))
        cur, pooled, ok = node, False, True
        while True:
            users = list(cur.users)
            if len(users) != 1:
                break
            u = users[0]
            um = mod(u)
            if isinstance(um, nn.BatchNorm2d) and cur is node:
                link.bn = str(u.target)
            elif um is not None and isinstance(um, _CHANNELWISE_MODULES):
                link.homogeneous &= isinstance(um, _HOMOGENEOUS_MODULES)
                pooled |= isinstance(um, nn.AdaptiveAvgPool2d) and um.output_size in (1, (1, 1))
            elif um is not None and isinstance(um, nn.Flatten) and pooled:
                pass
            elif u.op == "call_function" and u.target in _CHANNELWISE_FUNCS and u.args and u.args[0] is cur:
                link.homogeneous &= u.target in _HOMOGENEOUS_FUNCS
                if u.target is F.adaptive_avg_pool2d and u.args[1:2] in ((1,), ((1, 1),)):
                    pooled = True
            elif u.op == "call_method" and u.target in _HOMOGENEOUS_METHODS:
                pass
            elif (u.op == "call_method" and u.target in ("flatten", "view")) or (
                u.op == "call_function" and u.target in _FLATTEN_FUNCS
            ):
                if not pooled:
                    ok = False
                    break
            elif u.op == "call_function" and u.target is operator.getitem:
                ok = False
                break
            else:
                break
            cur = u
        if not ok:
            continue
        consumers = list(cur.users)
        if not consumers:
            continue
        for c in consumers:
            cm = mod(c)
            fits = (
                (isinstance(cm, nn.Conv2d) and cm.groups == 1 and c.args[0] is cur)
                or (isinstance(cm, Fingerprinted) and cm.layer.groups == 1 and c.args[0] is cur)
                or (isinstance(cm, nn.Linear) and pooled and c.args[0] is cur)
            )
            if not fits:
                break
            link.consumers.append(str(c.target))
        else:
            links.append(link)
    return links


# -- applying the maps ---------------------------------------------------------------------------


def _producer_params(m: nn.Module) -> tuple[list[torch.Tensor | None], list[torch.Tensor]]:
    """(tensors indexed by output channel on dim 0, fingerprint tensors to permute alongside)."""
    if isinstance(m, Fingerprinted):
        fp = m.fingerprint
        outs: list[torch.Tensor | None] = [m.layer.weight, m.layer.bias]
        if fp.project is None:
            outs += [fp.weight, fp.bias]
        else:
            outs += [fp.project.weight]
        return outs, []
    assert isinstance(m, nn.Conv2d)
    return [m.weight, m.bias], []


def _consumer_weights(m: nn.Module) -> list[torch.Tensor]:
    """Tensors whose dim 1 is the consumer's input channels."""
    if isinstance(m, Fingerprinted):
        return [m.layer.weight, m.fingerprint.weight]
    return [m.weight]  # type: ignore[list-item]


@torch.no_grad()
def permute_link(model: nn.Module, link: Link, perm: torch.Tensor) -> None:
    """Permute the link's channels by ``perm`` (new channel j = old ``perm[j]``), in place."""
    p = perm.to(torch.long)
    prod = model.get_submodule(link.producer)
    outs, _ = _producer_params(prod)
    for t in outs:
        if t is not None:
            t.copy_(t[p])
    if link.bn is not None:
        bn = model.get_submodule(link.bn)
        for name in ("weight", "bias", "running_mean", "running_var"):
            t = getattr(bn, name, None)
            if t is not None:
                t.copy_(t[p])
    for name in link.consumers:
        for w in _consumer_weights(model.get_submodule(name)):
            w.copy_(w[:, p])


@torch.no_grad()
def permute_fingerprint_filters(model: nn.Module, generator: torch.Generator) -> bool:
    """Permute the D filters of a projected fingerprint module (inverse on the projection).

    A module that adds directly is permuted with its layer by :func:`permute_link`; returns
    whether anything was permuted here."""
    done = False
    for m in model.modules():
        if isinstance(m, Fingerprinted) and m.fingerprint.project is not None:
            fp = m.fingerprint
            p = torch.randperm(fp.filters, generator=generator)
            fp.weight.copy_(fp.weight[p])
            fp.bias.copy_(fp.bias[p])
            assert fp.project is not None
            fp.project.weight.copy_(fp.project.weight[:, p])
            done = True
    return done


@torch.no_grad()
def scale_link(model: nn.Module, link: Link, a: float) -> None:
    """Scale the link's channels by ``a > 0`` with the reciprocal on its consumers, in place."""
    if a <= 0:
        raise ConfigError(f"scale factor must be > 0, got {a}")
    if not link.homogeneous:
        raise ConfigError(f"link {link.producer!r} passes a non-homogeneous activation: it cannot be rescaled")
    prod = model.get_submodule(link.producer)
    outs, _ = _producer_params(prod)
    for t in outs:  # weights and biases; before a BatchNorm its statistics compensate below
        if t is not None:
            t.mul_(a)
    if link.bn is not None:
        bn = model.get_submodule(link.bn)
        assert isinstance(bn, nn.BatchNorm2d)
        if bn.running_mean is None or bn.running_var is None:
            raise ConfigError(f"BatchNorm {link.bn!r} keeps no running statistics: cannot rescale exactly")
        bn.running_mean.mul_(a)
        bn.running_var.mul_(a * a)
        bn.eps = bn.eps * a * a
        if bn.weight is not None and bn.bias is not None:
            bn.weight.mul_(a)
            bn.bias.mul_(a)
        else:
            raise ConfigError(f"BatchNorm {link.bn!r} has no affine parameters: cannot rescale exactly")
    for name in link.consumers:
        consumer = model.get_submodule(name)
        for w in _consumer_weights(consumer):
            if (
                isinstance(consumer, Fingerprinted)
                and consumer.fingerprint.normalize
                and w is consumer.fingerprint.weight
            ):
                continue  # a normalised module does not see the scale of its input
            w.div_(a)


__all__ = ["Link", "find_links", "permute_fingerprint_filters", "permute_link", "scale_link"]
