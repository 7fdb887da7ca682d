"""TD3 with no target smoothing noise, no policy delay and one critic is DDPG: the same critic target, and one
update from the same weights on the same batch gives the same weights."""

from __future__ import annotations

import torch

from pgrad.algos import ddpg, td3
from pgrad.envs import describe, env_factory


def copy_ddpg_into_td3(dn, tn):
    """DDPG's QNet Linear weights [out, in] -> TD3's StackedQ weights [1, in, out]; the actors are the same class."""
    with torch.no_grad():
        for src_name, dst_name in (("q", "q"), ("q_targ", "q_targ")):
            lins = [m for m in dn[src_name].q.q if isinstance(m, torch.nn.Linear)]
            net = tn[dst_name].net
            for lin, w, b in zip(lins, net.weights, net.biases):
                w.copy_(lin.weight.T.unsqueeze(0))
                b.copy_(lin.bias.view(1, 1, -1))
        tn["mu"].load_state_dict(dn["mu"].state_dict())
        tn["mu_targ"].load_state_dict(dn["mu_targ"].state_dict())


def batch(spec, B=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"obs": torch.randn(B, spec.obs_dim, generator=g), "actions": torch.rand(B, spec.act_dim, generator=g) * 2 - 1,
            "rewards": torch.randn(B, generator=g), "next_obs": torch.randn(B, spec.obs_dim, generator=g),
            "discount": 0.99 * (torch.rand(B, generator=g) > 0.1).float()}


def test_td3_without_noise_delay_and_twin_is_ddpg():
    factory, env_id = env_factory("Pendulum-v1")
    spec = describe(factory(), env_id)
    common = dict(hidden=(32, 32), lr=1e-3, tau=0.05, gamma=0.99)
    dcfg = ddpg.Config(**common)
    tcfg = td3.Config(**common, target_noise=0.0, policy_delay=1, n_critics=1)
    torch.manual_seed(0)
    dn, dopt = ddpg.build(dcfg, spec)
    # perturb the targets so that target and online networks differ
    with torch.no_grad():
        for p in list(dn["q_targ"].parameters()) + list(dn["mu_targ"].parameters()):
            p.add_(0.05 * torch.randn_like(p))
    tn, topt = td3.build(tcfg, spec)
    copy_ddpg_into_td3(dn, tn)
    for step in range(3):
        b = batch(spec, seed=step)
        assert torch.allclose(ddpg.critic_target(dn, b), td3.critic_target(tn, b, tcfg), atol=1e-6)
        ddpg.update(dn, dopt, b, dcfg)
        td3.update(tn, topt, b, tcfg, update_actor=True)
        for a, c in zip(dn["mu"].parameters(), tn["mu"].parameters()):
            assert torch.allclose(a, c, atol=1e-5)
        lins = [m for m in dn["q"].q.q if isinstance(m, torch.nn.Linear)]
        for lin, w in zip(lins, tn["q"].net.weights):
            assert torch.allclose(lin.weight.T, w[0], atol=1e-5)
    # two critics: the clipped double-Q target never exceeds the first critic's own target
    t2 = td3.Config(**common, target_noise=0.0)
    tn2, _ = td3.build(t2, spec)
    b = batch(spec, seed=9)
    y2 = td3.critic_target(tn2, b, t2)
    with torch.no_grad():
        q1 = tn2["q_targ"](b["next_obs"], tn2["mu_targ"](b["next_obs"]))[0]
    assert (y2 <= b["rewards"] + b["discount"] * q1 + 1e-6).all()
    assert (y2 < b["rewards"] + b["discount"] * q1 - 1e-6).any()
