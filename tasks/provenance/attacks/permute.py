"""Filter permutation: permute the output channels of every permutable conv (inverse on the
layers that read them; the fingerprint module's filters move with its layer)."""

from __future__ import annotations

import torch
from torch import nn

from trustflow.errors import ConfigError
from trustflow.tasks.provenance.attacks.base import OWNERSHIP_ATTACKS, AttackContext, AttackOptions, OwnershipAttack
from trustflow.tasks.provenance.links import find_links, permute_fingerprint_filters, permute_link


@OWNERSHIP_ATTACKS.register("permute", options=AttackOptions)
class Permute(OwnershipAttack[AttackOptions]):
    function_preserving = True

    def apply(self, model: nn.Module, context: AttackContext) -> nn.Module:
        out = self.copy(model)
        links = find_links(out)
        if not links:
            raise ConfigError(f"permute: {type(out).__name__} has no conv whose channels can be permuted exactly")
        g = self.generator()
        for link in links:
            permute_link(out, link, torch.randperm(link.channels, generator=g))
        permute_fingerprint_filters(out, g)
        return out
