"""Target networks: Polyak (soft) updates θ' ← τ θ + (1 - τ) θ' in one fused call, and hard copies."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def polyak_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """θ' ← θ' + τ (θ - θ') for every parameter and floating buffer, as one torch._foreach_lerp_."""
    tgt = [p for p in target.parameters()] + [b for b in target.buffers() if b.is_floating_point()]
    src = [p for p in source.parameters()] + [b for b in source.buffers() if b.is_floating_point()]
    torch._foreach_lerp_(tgt, src, tau)


@torch.no_grad()
def hard_update(target: nn.Module, source: nn.Module) -> None:
    """θ' ← θ."""
    target.load_state_dict(source.state_dict())


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy with requires_grad=False, for target networks."""
    import copy

    tgt = copy.deepcopy(module)
    for p in tgt.parameters():
        p.requires_grad_(False)
    return tgt
