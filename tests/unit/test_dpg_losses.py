"""core.losses for the DPG family against slow references written from the equations."""

from __future__ import annotations

import math

import torch

from pgrad.core.losses import (
    categorical_loss,
    categorical_mean,
    categorical_projection,
    clipped_double_q_target,
    dpg_actor_loss,
    q_regression_loss,
    smoothed_target_action,
)
from pgrad.core.nets import StackedMLP, stacked_members


def projection_reference(r, discount, p, atoms):
    """Bellemare et al. (2017) Algorithm 1, one sample and one atom at a time, floor/ceil with the l == u case."""
    B, M = p.shape
    v_min, v_max = atoms[0].item(), atoms[-1].item()
    dz = (v_max - v_min) / (M - 1)
    m = torch.zeros(B, M, dtype=torch.float64)
    for i in range(B):
        for j in range(M):
            tz = min(max(r[i].item() + discount[i].item() * atoms[j].item(), v_min), v_max)
            b = (tz - v_min) / dz
            lo, hi = math.floor(b), math.ceil(b)
            if lo == hi:
                m[i, lo] += p[i, j].item()
            else:
                m[i, lo] += p[i, j].item() * (hi - b)
                m[i, hi] += p[i, j].item() * (b - lo)
    return m


def test_categorical_projection_matches_brute_force_and_preserves_mass():
    g = torch.Generator().manual_seed(0)
    B, M = 40, 11
    atoms = torch.linspace(-10.0, 10.0, M, dtype=torch.float64)
    r = torch.randn(B, generator=g, dtype=torch.float64) * 8
    r[:4] = torch.tensor([2.0, -2.0, 0.0, 40.0], dtype=torch.float64)  # on-atom shifts (b integer), far outside
    discount = torch.full((B,), 0.9, dtype=torch.float64)
    discount[:3] = 1.0  # b lands exactly on atoms
    discount[5:9] = 0.0  # terminated: all mass on the atoms around r
    p = torch.softmax(torch.randn(B, M, generator=g, dtype=torch.float64), -1)
    m = categorical_projection(r, discount, p, atoms)
    assert torch.allclose(m, projection_reference(r, discount, p, atoms), atol=1e-12)
    assert torch.allclose(m.sum(-1), torch.ones(B, dtype=torch.float64), atol=1e-12)
    assert (m >= 0).all()
    # the projection keeps the mean wherever no mass is clipped at the ends
    inside = ((r.unsqueeze(-1) + discount.unsqueeze(-1) * atoms).abs() <= 10).all(-1)
    mean_target = r + discount * (p * atoms).sum(-1)
    assert torch.allclose((m * atoms).sum(-1)[inside], mean_target[inside], atol=1e-10)


def test_categorical_loss_is_cross_entropy_and_weighted():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(6, 5, generator=g)
    target = torch.softmax(torch.randn(6, 5, generator=g), -1)
    w = torch.rand(6, generator=g)
    loss, ce = categorical_loss(logits, target, w)
    logp = torch.log_softmax(logits, -1)
    ref = torch.stack([-(target[i] * logp[i]).sum() for i in range(6)])
    assert torch.allclose(ce, ref) and torch.allclose(loss, (w * ref).mean())
    atoms = torch.linspace(-1, 1, 5)
    assert torch.allclose(categorical_mean(logits, atoms), (logp.exp() * atoms).sum(-1))


def test_clipped_double_q_target_and_ddpg_special_case():
    g = torch.Generator().manual_seed(2)
    r, disc = torch.randn(7, generator=g), torch.rand(7, generator=g)
    q_next = torch.randn(2, 7, generator=g)
    y = clipped_double_q_target(r, disc, q_next)
    for i in range(7):
        assert torch.isclose(y[i], r[i] + disc[i] * min(q_next[0, i], q_next[1, i]))
    # one critic: DDPG's y = r + γ Q'(s', μ'(s'))
    assert torch.equal(clipped_double_q_target(r, disc, q_next[:1]), r + disc * q_next[0])
    assert torch.equal(clipped_double_q_target(r, disc, q_next[0]), r + disc * q_next[0])


def test_smoothed_target_action():
    mu = torch.rand(1000, 2) * 2 - 1
    assert torch.equal(smoothed_target_action(mu, 0.0, 0.5), mu)
    torch.manual_seed(0)
    a = smoothed_target_action(mu, 0.2, 0.5)
    assert (a.abs() <= 1).all()
    inner = (mu.abs() < 0.4).all(-1)  # no clipping to the bounds possible there
    assert ((a - mu)[inner].abs() <= 0.5 + 1e-6).all()
    assert 0.15 < (a - mu)[inner].std() < 0.25


def test_q_regression_loss():
    q, y, w = torch.randn(2, 9), torch.randn(9), torch.rand(9)
    assert torch.isclose(q_regression_loss(q, y), ((q[0] - y) ** 2).mean() + ((q[1] - y) ** 2).mean())
    assert torch.isclose(q_regression_loss(q[0], y, w), (w * (q[0] - y) ** 2).mean())


def test_dpg_actor_loss_gradient_is_the_deterministic_policy_gradient():
    """μ_θ(s) = θ s (1-D), Q(s, a) = -(a - k s)^2 - s^2: ∇_θ J = E[∇_a Q ∇_θ μ] = E[-2(θ s - k s) s]."""
    g = torch.Generator().manual_seed(3)
    s = torch.randn(50, generator=g, dtype=torch.float64)
    theta = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    k = 1.7
    a = theta * s
    q = -(a - k * s) ** 2 - s ** 2
    (grad,) = torch.autograd.grad(dpg_actor_loss(q), theta)
    expected = -(-2 * (0.3 * s - k * s) * s).mean()  # the loss is -J
    assert torch.isclose(grad, expected)


def test_stacked_members_equals_forward_slice():
    torch.manual_seed(4)
    net = StackedMLP(3, 5, (8, 6), 1)
    x = torch.randn(10, 5)
    assert torch.allclose(stacked_members(net, x, 1), net(x)[:1])
    assert torch.allclose(stacked_members(net, x, 2), net(x)[:2])
