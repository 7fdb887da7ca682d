"""core.nets: stacked ensembles equal their members run separately."""

from __future__ import annotations

import torch

from pgrad.core.nets import StackedMLP, StackedQ


def test_stacked_mlp_equals_members():
    torch.manual_seed(0)
    net = StackedMLP(3, 5, (16, 8), 2, "tanh")
    x = torch.randn(7, 5)
    out = net(x)
    assert out.shape == (3, 7, 2)
    for j in range(3):
        assert torch.allclose(out[j], net.member(j)(x), atol=1e-6)
    xs = torch.randn(3, 7, 5)
    out2 = net(xs)
    for j in range(3):
        assert torch.allclose(out2[j], net.member(j)(xs[j]), atol=1e-6)


def test_stacked_q_gradients_are_per_member():
    torch.manual_seed(1)
    q = StackedQ(2, 3, 1, (8,))
    obs, act = torch.randn(4, 3), torch.randn(4, 1)
    q(obs, act)[0].sum().backward()
    assert q.net.weights[0].grad[1].abs().sum() == 0 and q.net.weights[0].grad[0].abs().sum() > 0
