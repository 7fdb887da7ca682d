"""core.distributions against torch.distributions and numerical integration."""

from __future__ import annotations

import math

import torch
import torch.distributions as D

from pgrad.core.distributions import Categorical, DiagGaussian, OUNoise, TanhGaussian, scale_log_prob


def test_categorical_matches_torch():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(7, 5, generator=g) * 3
    a = torch.randint(0, 5, (7,), generator=g)
    ours, ref = Categorical(logits), D.Categorical(logits=logits)
    assert torch.allclose(ours.log_prob(a), ref.log_prob(a), atol=1e-6)
    assert torch.allclose(ours.entropy(), ref.entropy(), atol=1e-6)
    other = torch.randn(7, 5, generator=g)
    assert torch.allclose(ours.kl(Categorical(other)), D.kl_divergence(ref, D.Categorical(logits=other)), atol=1e-6)


def test_categorical_sampling_frequencies():
    torch.manual_seed(0)
    p = torch.tensor([0.1, 0.2, 0.7])
    n = 40_000
    s = Categorical(p.log().expand(n, 3)).sample()
    freq = torch.bincount(s, minlength=3).float() / n
    se = (p * (1 - p) / n).sqrt()
    assert ((freq - p).abs() < 4 * se).all()


def test_diag_gaussian_matches_torch():
    g = torch.Generator().manual_seed(1)
    mean, log_std = torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g) * 0.5
    a = torch.randn(6, 3, generator=g)
    ours = DiagGaussian(mean, log_std)
    ref = D.Independent(D.Normal(mean, log_std.exp()), 1)
    assert torch.allclose(ours.log_prob(a), ref.log_prob(a), atol=1e-5)
    assert torch.allclose(ours.entropy(), ref.entropy(), atol=1e-5)
    m2, s2 = torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g) * 0.5
    ref2 = D.Independent(D.Normal(m2, s2.exp()), 1)
    assert torch.allclose(ours.kl(DiagGaussian(m2, s2)), D.kl_divergence(ref, ref2), atol=1e-5)


def test_tanh_gaussian_density_integrates_to_one_and_matches_change_of_variables():
    mean, log_std = torch.tensor([[0.7]]), torch.tensor([[-0.3]])
    # numerical integration of exp(log π(a)) over a in (-1, 1)
    a = torch.linspace(-1 + 1e-6, 1 - 1e-6, 200_001).unsqueeze(-1)
    dens = TanhGaussian(mean.expand(len(a), 1), log_std.expand(len(a), 1)).log_prob(a).exp()
    integral = torch.trapezoid(dens.squeeze(), a.squeeze()).item()
    assert abs(integral - 1.0) < 1e-3
    # against torch's TransformedDistribution
    ref = D.TransformedDistribution(D.Normal(mean, log_std.exp()), [D.TanhTransform()])
    x = torch.tensor([[-0.9], [0.0], [0.5], [0.99]])
    ours = TanhGaussian(mean.expand(4, 1), log_std.expand(4, 1)).log_prob(x)
    assert torch.allclose(ours, ref.log_prob(x).squeeze(-1), atol=1e-4)


def test_tanh_gaussian_rsample_log_prob_is_stable_for_saturated_actions():
    mean, log_std = torch.full((4, 2), 12.0), torch.zeros(4, 2)
    a, logp = TanhGaussian(mean, log_std).rsample_with_log_prob()
    assert torch.isfinite(logp).all()
    # scaled actions: the density in env units is lower by log((high - low)/2)
    low, high = torch.tensor([-2.0, -2.0]), torch.tensor([2.0, 2.0])
    assert torch.allclose(scale_log_prob(logp, low, high), logp - 2 * math.log(2.0))


def test_ou_noise_mean_reverts_and_resets():
    torch.manual_seed(0)
    noise = OUNoise((2, 3), sigma=0.2, theta=0.15, dt=1.0)
    xs = torch.stack([noise().clone() for _ in range(5000)])
    assert xs.mean().abs() < 0.1
    noise.reset(torch.tensor([True, False]))
    assert (noise.x[0] == 0).all() and (noise.x[1] != 0).any()
