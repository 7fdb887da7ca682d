"""core.losses SAC soft targets and losses against slow loops written from the post's equations, and the
tanh-squashed Gaussian rescaled to asymmetric bounds against a reference density."""

from __future__ import annotations

import math

import torch
import torch.distributions as D

from pgrad.core.distributions import TanhGaussian, scale_log_prob
from pgrad.core.losses import (
    sac_policy_loss,
    soft_q_loss,
    soft_q_target,
    soft_v_loss,
    soft_v_target,
    temperature_loss,
)


def _data(B=9, K=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(K, B, generator=g), torch.randn(B, generator=g), torch.randn(B, generator=g),
            (torch.rand(B, generator=g) < 0.3), torch.randn(B, generator=g))


def test_soft_v_target_is_min_q_minus_alpha_logp():
    q_pi, logp, _, _, _ = _data()
    alpha = 0.37
    out = soft_v_target(q_pi, logp, alpha)
    for i in range(q_pi.shape[1]):
        ref = min(q_pi[0, i].item(), q_pi[1, i].item()) - alpha * logp[i].item()
        assert math.isclose(out[i].item(), ref, rel_tol=1e-6, abs_tol=1e-6)
    assert not out.requires_grad
    # one critic ([B]): no minimum
    assert torch.allclose(soft_v_target(q_pi[0], logp, alpha), q_pi[0] - alpha * logp)


def test_soft_q_target_stops_at_termination_and_bootstraps_at_truncation():
    _, _, r, term, v_next = _data()
    gamma = 0.9
    discount = gamma * (~term).float()
    y = soft_q_target(r, discount, v_next)
    for i in range(len(r)):
        ref = r[i].item() + (0.0 if term[i] else gamma * v_next[i].item())
        assert math.isclose(y[i].item(), ref, rel_tol=1e-6, abs_tol=1e-6)


def test_soft_q_loss_sums_halved_mse_over_critics():
    q, _, y, _, _ = _data()
    q = q.clone().requires_grad_(True)
    loss = soft_q_loss(q, y)
    ref = 0.0
    for k in range(q.shape[0]):
        ref += sum(0.5 * (q[k, i].item() - y[i].item()) ** 2 for i in range(q.shape[1])) / q.shape[1]
    assert math.isclose(loss.item(), ref, rel_tol=1e-6)
    loss.backward()
    # ∇_{Q_k(s_i, a_i)} J_Q = (Q_k - y_i) / B: each critic is regressed to y independently
    assert torch.allclose(q.grad, (q.detach() - y) / q.shape[1], atol=1e-7)
    assert math.isclose(soft_q_loss(q[0], y).item(), 0.5 * ((q[0] - y) ** 2).mean().item(), rel_tol=1e-6)


def test_soft_v_loss_is_halved_mse():
    _, v, target, _, _ = _data()
    v = v.clone().requires_grad_(True)
    loss = soft_v_loss(v, target)
    B = len(v)
    assert math.isclose(loss.item(), sum(0.5 * (v[i].item() - target[i].item()) ** 2 for i in range(B)) / B,
                        rel_tol=1e-6)
    loss.backward()
    assert torch.allclose(v.grad, (v.detach() - target) / B, atol=1e-7)


def test_sac_policy_loss_and_gradient():
    q_pi, logp, _, _, _ = _data()
    alpha = 0.2
    logp = logp.clone().requires_grad_(True)
    q_pi = q_pi.clone().requires_grad_(True)
    loss = sac_policy_loss(logp, q_pi, alpha)
    B = logp.shape[0]
    ref = sum(alpha * logp[i].item() - min(q_pi[0, i].item(), q_pi[1, i].item()) for i in range(B)) / B
    assert math.isclose(loss.item(), ref, rel_tol=1e-6, abs_tol=1e-6)
    loss.backward()
    assert torch.allclose(logp.grad, torch.full((B,), alpha / B))
    lo = q_pi.detach().argmin(0)
    expect = torch.zeros_like(q_pi)
    expect[lo, torch.arange(B)] = -1.0 / B
    assert torch.allclose(q_pi.grad, expect)


def test_sac_policy_loss_is_alpha_times_kl_to_boltzmann_up_to_log_z():
    # 1-D actions on a grid: J_π = α E_π[log π - Q/α] = α KL(π || exp(Q/α)/Z) - α log Z (post: SAC)
    torch.manual_seed(0)
    alpha = 0.5
    mean, log_std = torch.tensor([[0.3]]), torch.tensor([[-0.5]])
    a = torch.linspace(-1 + 1e-4, 1 - 1e-4, 20_001).unsqueeze(-1)
    logp = TanhGaussian(mean.expand(len(a), 1), log_std.expand(len(a), 1)).log_prob(a)
    q = -4.0 * (a.squeeze(-1) - 0.5) ** 2
    p = logp.exp()
    log_z = torch.log(torch.trapezoid((q / alpha).exp(), a.squeeze()))
    kl = torch.trapezoid(p * (logp - (q / alpha - log_z)), a.squeeze())
    # Monte-Carlo J_π with reparameterised samples
    u = mean + log_std.exp() * torch.randn(200_000, 1)
    dist = TanhGaussian(mean.expand(200_000, 1), log_std.expand(200_000, 1))
    s = torch.tanh(u)
    mc = sac_policy_loss(dist.log_prob(s), -4.0 * (s.squeeze(-1) - 0.5) ** 2, alpha)
    assert abs(mc.item() - (alpha * kl - alpha * log_z).item()) < 0.01


def test_temperature_loss_gradient_sign():
    logp = torch.tensor([-0.5, 0.2, 0.1])  # entropy estimate -E[log π] = 0.0667
    log_alpha = torch.zeros((), requires_grad=True)
    temperature_loss(log_alpha, logp, target_entropy=-1.0).backward()
    # entropy above target -> gradient positive -> gradient descent lowers α
    ref = -sum(lp + (-1.0) for lp in logp.tolist()) / 3
    assert math.isclose(log_alpha.grad.item(), ref, rel_tol=1e-6)
    assert log_alpha.grad.item() > 0
    log_alpha.grad = None
    temperature_loss(log_alpha, logp, target_entropy=2.0).backward()
    assert log_alpha.grad.item() < 0


def test_tanh_gaussian_scaled_to_asymmetric_bounds_matches_reference_density():
    g = torch.Generator().manual_seed(3)
    mean, log_std = torch.randn(5, 2, generator=g), torch.randn(5, 2, generator=g) * 0.5
    low, high = torch.tensor([-3.0, 0.0]), torch.tensor([1.0, 0.5])
    dist = TanhGaussian(mean, log_std)
    a, logp = dist.rsample_with_log_prob()
    env_a = low + (a + 1) * (high - low) / 2
    ref = D.Independent(D.TransformedDistribution(
        D.Normal(mean, log_std.exp()),
        [D.TanhTransform(), D.AffineTransform(loc=(high + low) / 2, scale=(high - low) / 2)]), 1)
    assert torch.allclose(scale_log_prob(logp, low, high), ref.log_prob(env_a), atol=1e-4)
    # the rsample path and log_prob of the same action agree away from saturation
    assert torch.allclose(dist.log_prob(a.detach()), logp, atol=1e-3)


def test_scaled_density_integrates_to_one_over_env_bounds():
    low, high = torch.tensor([-2.0]), torch.tensor([0.5])
    mean, log_std = torch.tensor([[-0.4]]), torch.tensor([[0.2]])
    x = torch.linspace(low.item() + 1e-6, high.item() - 1e-6, 100_001).unsqueeze(-1)
    unit = 2 * (x - low) / (high - low) - 1
    dens = scale_log_prob(TanhGaussian(mean.expand(len(x), 1), log_std.expand(len(x), 1)).log_prob(unit),
                          low, high).exp()
    assert abs(torch.trapezoid(dens, x.squeeze()).item() - 1.0) < 1e-3


def test_tanh_gaussian_policy_head_shapes_and_clamp():
    from pgrad.core.nets import TanhGaussianPolicy

    torch.manual_seed(0)
    pi = TanhGaussianPolicy(5, 3, (8,), log_std_min=-2.0, log_std_max=0.5)
    with torch.no_grad():
        pi.net[-1].bias[3:] = torch.tensor([-50.0, 0.0, 50.0])  # log σ far outside the clamp
    dist = pi(torch.randn(4, 5))
    a, logp = dist.rsample_with_log_prob()
    assert a.shape == (4, 3) and logp.shape == (4,) and (a.abs() < 1).all()
    ls = dist.base.log_std
    assert torch.allclose(ls[:, 0], torch.full((4,), -2.0)) and torch.allclose(ls[:, 2], torch.full((4,), 0.5))
    logp.sum().backward()
    assert all(p.grad is not None for p in pi.parameters())
