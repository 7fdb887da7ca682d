"""Issue 20 (point 6): DPG's natural gradient takes the paper's plain step θ ← θ + α_θ w by default (Silver et al.,
2014, COPDAC-Q), Adam as an option; the off-policy actor-critic's importance weights are unclipped by default, as
Degris et al. (2012) define them, with clipping as an option."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pgrad.algos import dpg, off_policy_ac
from pgrad.envs.spaces import EnvSpec


def lqr_like_spec(obs_dim=2, act_dim=1):
    return EnvSpec("test", obs_dim, "box", 0, "box", act_dim, act_low=np.full(act_dim, -5.0, np.float32),
                   act_high=np.full(act_dim, 5.0, np.float32))


def dpg_batch(B=8, D=2, A=1, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return {"obs": torch.randn(B, D, generator=gen), "actions": torch.randn(B, A, generator=gen),
            "rewards": torch.randn(B, generator=gen), "next_obs": torch.randn(B, D, generator=gen),
            "next_actions": torch.randn(B, A, generator=gen), "discount": torch.full((B,), 0.9)}


def test_dpg_default_natural_step_is_theta_plus_alpha_w():
    cfg = dpg.Config()
    assert (cfg.critic, cfg.natural, cfg.optimizer, cfg.critic_optimizer) == ("compatible", True, "sgd", "adam")
    torch.manual_seed(0)
    nets, opt = dpg.build(cfg, lqr_like_spec())
    with torch.no_grad():
        nets["mu"].theta.copy_(torch.tensor([[0.3, -0.2]]))
        nets["q"].w.copy_(torch.tensor([0.7, -1.1]))
    theta0 = nets["mu"].theta.detach().clone()
    dpg.update(nets, opt, dpg_batch(), cfg)
    w = nets["q"].w.detach()  # after this update's critic step (2), which the actor step (6) reads
    assert torch.allclose(nets["mu"].theta.detach(), theta0 + cfg.lr * w.view_as(theta0), atol=1e-7)


def test_dpg_adam_is_an_option_and_differs_from_the_plain_step():
    cfg = dpg.Config(optimizer="adam")
    torch.manual_seed(0)
    nets, opt = dpg.build(cfg, lqr_like_spec())
    assert isinstance(opt["mu"], torch.optim.Adam) and isinstance(opt["q"], torch.optim.Adam)
    with torch.no_grad():
        nets["q"].w.copy_(torch.tensor([0.7, -1.1]))
    theta0 = nets["mu"].theta.detach().clone()
    dpg.update(nets, opt, dpg_batch(), cfg)
    w = nets["q"].w.detach()
    # Adam's first step moves each coordinate by α_θ in the direction of w, whatever w's size
    assert torch.allclose(nets["mu"].theta.detach() - theta0, cfg.lr * torch.sign(w).view_as(theta0), atol=1e-6)
    plain = dpg.build(dpg.Config(), lqr_like_spec())[1]
    assert isinstance(plain["mu"], torch.optim.SGD) and isinstance(plain["q"], torch.optim.Adam)
    assert isinstance(dpg.build(dpg.Config(critic_optimizer="sgd"), lqr_like_spec())[1]["q"], torch.optim.SGD)


def offpac_batch(B=64, D=4, A=3, seed=0):
    """Behaviour probabilities β(a|s) of the taken actions between 0.005 and 0.5: with π near uniform at the
    start, importance weights from about 0.7 to about 60."""
    gen = torch.Generator().manual_seed(seed)
    beta_a = torch.where(torch.arange(B) % 2 == 0, 0.005 + 0.05 * torch.rand(B, generator=gen), torch.full((B,), 0.5))
    return {"obs": torch.randn(B, D, generator=gen), "actions": torch.randint(0, A, (B,), generator=gen),
            "beta_logp": beta_a.log(), "rewards": torch.randn(B, generator=gen),
            "next_obs": torch.randn(B, D, generator=gen), "discount": torch.full((B,), 0.99)}


@pytest.mark.parametrize("rho_max", ["default", 2.0])
def test_off_policy_ac_importance_weights_unclipped_by_default(rho_max):
    cfg = off_policy_ac.Config() if rho_max == "default" else off_policy_ac.Config(rho_max=rho_max)
    assert cfg.rho_max == (None if rho_max == "default" else rho_max)
    cfg.max_grad_norm = 1e9
    torch.manual_seed(0)
    spec = EnvSpec("test", 4, "box", 0, "discrete", 3)
    nets, opts = off_policy_ac.build(cfg, spec)
    for o in opts.values():
        o.param_groups[0]["lr"] = 0.0  # keep θ: the test reads the gradient
    b = offpac_batch()
    params = list(nets["pi"].parameters())
    # the reference, written from Degris et al.'s gradient: -(1/B) Σ ρ Ψ ∇ ln π(a|s), ρ = π/β (clipped if asked)
    dist = nets["pi"](b["obs"])
    logp = dist.log_prob(b["actions"])
    with torch.no_grad():
        q_all = nets["q"](b["obs"])
        q_sa = q_all.gather(-1, b["actions"].unsqueeze(-1)).squeeze(-1)
        psi = q_sa - (dist.probs * q_all).sum(-1)
        rho = (logp - b["beta_logp"]).exp()
    assert float(rho.max()) > 10.0  # the batch has weights the old default (10) would have clipped
    w = rho if cfg.rho_max is None else rho.clamp(max=cfg.rho_max)
    expected = torch.autograd.grad(-(w * psi * logp).mean(), params)
    off_policy_ac.update(nets, opts, b, cfg)
    for p, e in zip(params, expected):
        assert torch.allclose(p.grad, e, atol=1e-5 * (1 + float(e.abs().max()))), (p.grad, e)
