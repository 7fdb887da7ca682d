"""MADDPG's stacked update against a slow loop over agents written from the equations, with separate networks.

The loop takes each learner (agent i, sub-policy k) in turn with its own ordinary MLPs (StackedMLP.member) and
its own Adam: target actions a'_j (μ'_j of the sub-policy j played, or agent i's inferred μ̂'_i^j), y = r_i +
γ(1 - term_i) Q'_i(o⃗', a'), the critic step on (Q_i(o⃗, a) - y)^2, the actor step on -Q_i with only a_i replaced by
μ_i(o_i), per-learner gradient clipping, and the soft target updates. Sampling is made deterministic (argmax in
place of the Gumbel-max draws, zero Gumbel noise in the relaxation) so both sides see the same actions.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from pgrad.algos import maddpg
from pgrad.config import make_config
from pgrad.envs import MultiAgentSpec

NEG = -1e9


def toy_spec(kind: str) -> MultiAgentSpec:
    """Three agents of different sizes (observations 2, 4, 3; actions 2, 3, 1 (box) or 2, 3, 2 (discrete))."""
    if kind == "discrete":
        return MultiAgentSpec("toy", ["a", "b", "c"], [2, 4, 3], ["box"] * 3, "discrete", [2, 3, 2])
    return MultiAgentSpec("toy", ["a", "b", "c"], [2, 4, 3], ["box"] * 3, "box", [2, 3, 1],
                          [[-1, -1], [0, 0, 0], [-2]], [[1, 1], [1, 1, 1], [2]])


def random_batch(spec, L, B, K, g):
    N, O, A = spec.n_agents, spec.obs_dim, spec.n_actions
    om, am = torch.as_tensor(spec.obs_mask()), torch.as_tensor(spec.act_mask())
    obs = torch.randn(L, B, N, O, generator=g) * om
    nxt = torch.randn(L, B, N, O, generator=g) * om
    if spec.action_kind == "discrete":
        logits = torch.randn(L, B, N, A, generator=g).masked_fill(~am, NEG)
        actions = F.one_hot(logits.argmax(-1), A).float()
    else:
        actions = (torch.rand(L, B, N, A, generator=g) * 2 - 1) * am
    return {"obs": obs, "next_obs": nxt, "actions": actions, "rewards": torch.randn(L, B, N, generator=g),
            "agent_term": torch.rand(L, B, N, generator=g) < 0.2, "acted": torch.rand(L, B, N, generator=g) < 0.9,
            "k": torch.randint(K, (L, B, N), generator=g)}


def straight_through(logits, tau=1.0, hard=True):
    soft = torch.softmax(logits / tau, -1)
    if not hard:
        return soft
    return F.one_hot(soft.argmax(-1), soft.shape[-1]).float() - soft.detach() + soft


def head(out, mask, discrete, cfg=None):
    """a'_j of (1) with noise-free sampling: the one-hot argmax, or the soft sample softmax(logits / T) with
    gumbel_hard=False (the critics are targeted with the kind of action they are trained on)."""
    if discrete:
        logits = out.masked_fill(~mask, NEG)
        if cfg is not None and not cfg.gumbel_hard:
            return torch.softmax(logits / cfg.gumbel_temperature, -1)
        return F.one_hot(logits.argmax(-1), out.shape[-1]).float()
    return torch.tanh(out) * mask


def reference_update(nets, b, recent, cfg):
    """Returns the members' new parameters {name: [state_dict per member]} after one update, computed per learner."""
    lay = nets["layout"]
    N, K = lay.n, lay.k
    L = N * K
    mask = lay.act_mask
    disc = lay.discrete
    pairs = [(i, j) for i in range(N) for j in range(N) if j != i]
    new: dict[str, list] = {"mu": [], "q": [], "mu_targ": [], "q_targ": [], "pi_hat": [], "pi_hat_targ": []}
    mu_t = [nets["mu_targ"].member(m) for m in range(L)]
    q_t = [nets["q_targ"].member(m) for m in range(L)]
    if "pi_hat" in nets:  # (5) log-likelihood + λ entropy, one Adam step per pair
        for p, (i, j) in enumerate(pairs):
            net = nets["pi_hat"].net.member(p)
            extra = []
            if not disc:
                log_std = nets["pi_hat"].log_std[p].detach().clone().requires_grad_(True)
                extra = [log_std]
            opt = torch.optim.Adam(list(net.parameters()) + extra, lr=cfg.infer_lr or cfg.lr)
            out, aj, w = net(recent["obs"][:, j]), recent["actions"][:, j], recent["acted"][:, j].float()
            if disc:
                lp_all = torch.log_softmax(out.masked_fill(~mask[j], NEG), -1)
                lp, ent = (aj * lp_all).sum(-1), -(lp_all.exp() * lp_all).sum(-1)
            else:
                d = int(mask[j].sum())
                ls = log_std[0, :d]
                lp = torch.distributions.Normal(torch.tanh(out[:, :d]), ls.exp()).log_prob(aj[:, :d]).sum(-1)
                ent = torch.distributions.Normal(torch.zeros(d), ls.exp()).entropy().sum().expand_as(lp)
            loss = -(w * (lp + cfg.infer_ent * ent)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            tgt = nets["pi_hat_targ"].net.member(p)
            new["pi_hat"].append(net.state_dict())
            new["pi_hat_targ"].append({k: (1 - cfg.tau) * v + cfg.tau * net.state_dict()[k]
                                       for k, v in tgt.state_dict().items()})
    pi_t = [nets["pi_hat_targ"].net.member(p) for p in range(len(pairs))] if "pi_hat" in nets else []
    for m in range(L):
        i = m // K  # learner m = (agent i, sub-policy m % K)
        bl = {key: v[m] for key, v in b.items()}
        B = bl["obs"].shape[0]
        cols = []
        for j in range(N):  # a'_j, row by row where agent j's sub-policy varies
            if j == i:
                cols.append(head(mu_t[m](bl["next_obs"][:, j]), mask[j], disc, cfg))
            elif cfg.infer_policies:
                cols.append(head(pi_t[pairs.index((i, j))](bl["next_obs"][:, j]), mask[j], disc, cfg))
            else:
                rows = [head(mu_t[j * K + int(bl["k"][r, j])](bl["next_obs"][r:r + 1, j]), mask[j], disc, cfg)
                        for r in range(B)]
                cols.append(torch.cat(rows))
        a_next = torch.stack(cols, 1)
        if cfg.centralized:
            x_next = torch.cat([bl["next_obs"].flatten(1), a_next.flatten(1)], -1)
            x = torch.cat([bl["obs"].flatten(1), bl["actions"].flatten(1)], -1)
        else:
            x_next = torch.cat([bl["next_obs"][:, i], a_next[:, i]], -1)
            x = torch.cat([bl["obs"][:, i], bl["actions"][:, i]], -1)
        with torch.no_grad():
            y = bl["rewards"][:, i] + cfg.gamma * (~bl["agent_term"][:, i]).float() * q_t[m](x_next).squeeze(-1)
        w = bl["acted"][:, i].float()
        qnet = nets["q"].member(m)
        opt_q = torch.optim.Adam(qnet.parameters(), lr=cfg.critic_lr or cfg.lr)
        loss = (w * (qnet(x).squeeze(-1) - y).pow(2)).mean()  # (2)
        opt_q.zero_grad()
        loss.backward()
        if cfg.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(qnet.parameters(), cfg.max_grad_norm)
        opt_q.step()
        munet = nets["mu"].member(m)
        opt_mu = torch.optim.Adam(munet.parameters(), lr=cfg.lr)
        raw = munet(bl["obs"][:, i])
        d = int(mask[i].sum())
        a_i = straight_through(raw.masked_fill(~mask[i], NEG), cfg.gumbel_temperature, cfg.gumbel_hard) \
            if disc else torch.tanh(raw) * mask[i]
        joint = bl["actions"].clone()
        joint[:, i] = a_i  # (3): only agent i's own action is replaced
        xa = torch.cat([bl["obs"].flatten(1), joint.flatten(1)], -1) if cfg.centralized else \
            torch.cat([bl["obs"][:, i], a_i], -1)
        loss = -(w * qnet(xa).squeeze(-1)).mean() + cfg.logit_reg * raw[:, :d].pow(2).mean()
        grads = torch.autograd.grad(loss, list(munet.parameters()))
        for p_, g_ in zip(munet.parameters(), grads):
            p_.grad = g_
        if cfg.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(munet.parameters(), cfg.max_grad_norm)
        opt_mu.step()
        for name, net, tgt in (("mu", munet, mu_t[m]), ("q", qnet, q_t[m])):
            new[name].append(net.state_dict())
            new[name + "_targ"].append({k_: (1 - cfg.tau) * v + cfg.tau * net.state_dict()[k_]
                                        for k_, v in tgt.state_dict().items()})
    return new


CASES = [
    ("discrete", dict()),
    ("discrete", dict(ensemble=2)),
    ("discrete", dict(infer_policies=True, gumbel_hard=False, gumbel_temperature=0.7)),
    ("discrete", dict(centralized=False, ensemble=2)),
    ("box", dict(ensemble=2, infer_policies=True)),
    ("box", dict(max_grad_norm=None, critic_lr=3e-3)),
]


@pytest.mark.parametrize("kind,kw", CASES)
def test_update_equals_per_agent_loop(kind, kw, monkeypatch):
    monkeypatch.setattr(maddpg, "_gumbel_max", lambda logits: logits.argmax(-1))
    monkeypatch.setattr(maddpg.F, "gumbel_softmax", straight_through)
    torch.manual_seed(0)
    spec = toy_spec(kind)
    cfg = make_config(maddpg.Config, "maddpg", None, {"hidden": (16, 16), "lr": 1e-2, "max_grad_norm": 0.5, **kw})
    nets, opt = maddpg.build(cfg, spec)
    # make the targets differ from the online networks, as after some training
    for name in ("mu_targ", "q_targ", "pi_hat_targ"):
        if name in nets:
            with torch.no_grad():
                for p in nets[name].parameters():
                    p.add_(0.1 * torch.randn_like(p))
    g = torch.Generator().manual_seed(1)
    L = spec.n_agents * cfg.ensemble
    b = random_batch(spec, L, 8, cfg.ensemble, g)
    for key in ("k",):
        b[key][nets["layout"].own.unsqueeze(1).expand(-1, 8, -1)] = nets["layout"].sub_of.repeat_interleave(8)
    rb = random_batch(spec, 1, 12, 1, g)
    recent = {k: rb[k][0] for k in ("obs", "actions", "acted")}
    ref = reference_update(copy.deepcopy(nets), b, recent, cfg)
    maddpg.update(nets, opt, b, cfg, recent)
    for name, members in ref.items():
        if not members:
            continue
        stacked = nets[name].net if name.startswith("pi_hat") else nets[name]
        for m, sd in enumerate(members):
            got = stacked.member(m).state_dict()
            for key, v in sd.items():
                assert torch.allclose(got[key], v, atol=1e-6, rtol=1e-5), (name, m, key)


def test_padding_is_invisible():
    """A padded actor equals the unpadded network made of its real input columns, on the real inputs."""
    spec = toy_spec("discrete")
    cfg = make_config(maddpg.Config, "maddpg", None, dict(hidden=(8,)))
    nets, _ = maddpg.build(cfg, spec)
    obs = torch.randn(5, 3, 4) * torch.as_tensor(spec.obs_mask())
    out = maddpg.policy_outputs(nets, obs)  # [B, N, A] masked logits
    for i, (d_o, d_a) in enumerate(zip(spec.obs_dims, spec.act_dims)):
        net = nets["mu"].member(i)
        small = torch.nn.Sequential(torch.nn.Linear(d_o, 8), torch.nn.ReLU(), torch.nn.Linear(8, d_a))
        with torch.no_grad():
            small[0].weight.copy_(net[0].weight[:, :d_o])
            small[0].bias.copy_(net[0].bias)
            small[2].weight.copy_(net[2].weight[:d_a])
            small[2].bias.copy_(net[2].bias[:d_a])
        assert torch.allclose(out[:, i, :d_a], small(obs[:, i, :d_o]), atol=1e-6)
        assert torch.all(out[:, i, d_a:] == NEG)
        probs = torch.softmax(out[:, i], -1)
        assert torch.all(probs[:, d_a:] == 0)
    draws = maddpg._gumbel_max(out.unsqueeze(0).expand(2000, -1, -1, -1))
    for i, d_a in enumerate(spec.act_dims):
        assert int(draws[..., i].max()) < d_a  # a padded action is never drawn
    freq = F.one_hot(draws[:, 0, 1], 3).float().mean(0)
    assert torch.allclose(freq, torch.softmax(out[0, 1], -1), atol=0.04)  # Gumbel-max draws follow π


def test_clip_grad_norm_stacked_matches_per_member():
    from pgrad.core.nets import StackedMLP

    torch.manual_seed(0)
    net = StackedMLP(3, 4, (5,), 2)
    x = torch.randn(3, 7, 4) * torch.tensor([1.0, 10.0, 0.01]).view(3, 1, 1)
    net(x).pow(2).sum().backward()
    refs = []
    for m in range(3):
        member = net.member(m)
        member(x[m]).pow(2).sum().backward()
        torch.nn.utils.clip_grad_norm_(member.parameters(), 0.5)
        refs.append([p.grad.clone() for p in member.parameters()])
    maddpg.clip_grad_norm_stacked(list(net.parameters()), 0.5)
    for m in range(3):
        got = net.member(m)
        ws = [net.weights[i].grad[m].T for i in range(2)]
        bs = [net.biases[i].grad[m, 0] for i in range(2)]
        assert torch.allclose(ws[0], refs[m][0], atol=1e-6) and torch.allclose(bs[0], refs[m][1], atol=1e-6)
        assert torch.allclose(ws[1], refs[m][2], atol=1e-6) and torch.allclose(bs[1], refs[m][3], atol=1e-6)
        del got


def test_ensemble_learners_sample_their_own_buffer():
    from pgrad.data.replay import ReplayBuffer

    spec = toy_spec("discrete")
    cfg = make_config(maddpg.Config, "maddpg", None, dict(hidden=(8,), ensemble=3))
    nets, _ = maddpg.build(cfg, spec)
    lay = nets["layout"]
    N, E = 3, 2
    buf = ReplayBuffer(200, E, (N, 4), (N, 3), reward_shape=(N,),
                       extra={"agent_term": ((N,), torch.bool), "acted": ((N,), torch.bool), "k": ((N,), torch.long)})
    g = torch.Generator().manual_seed(0)
    for t in range(60):  # observation entry 0 of agent 0 identifies the transition: id = 2 t + e
        ids = torch.tensor([2.0 * t, 2.0 * t + 1])
        obs = torch.zeros(E, N, 4)
        obs[:, 0, 0] = ids
        buf.add(obs, torch.zeros(E, N, 3), torch.zeros(E, N), torch.zeros(E, dtype=torch.bool),
                torch.zeros(E, dtype=torch.bool), torch.zeros(E, N, 4), agent_term=torch.zeros(E, N, dtype=torch.bool),
                acted=torch.ones(E, N, dtype=torch.bool), k=torch.randint(3, (E, N), generator=g))
    b = maddpg.sample_learners(buf, lay, 64)
    assert b["k"].shape == (9, 64, 3)
    for m in range(9):
        i, k = m // 3, m % 3
        assert torch.all(b["k"][m, :, i] == k)  # learner (i, k) only sees D_i^(k)
    # uniform within D_0^(1): every transition in it is drawn, with about equal frequency
    members = set(torch.nonzero(buf.fields["k"][:60, :, 0].reshape(-1) == 1).reshape(-1).tolist())
    counts = torch.zeros(120)
    for _ in range(20):
        ids = maddpg.sample_learners(buf, lay, 500)["obs"][1, :, 0, 0].long()
        counts += torch.bincount(ids, minlength=120)
    drawn = set(torch.nonzero(counts).reshape(-1).tolist())
    assert drawn == members
    c = counts[sorted(members)]
    expected = 20 * 500 / len(members)
    assert float(((c - expected) ** 2 / expected).sum()) < len(members) + 5 * (2 * len(members)) ** 0.5  # χ²


@pytest.mark.parametrize("hard", [True, False])
def test_stored_discrete_action_is_the_kind_the_critics_train_on(hard):
    """gumbel_hard=False stores the soft Gumbel-softmax sample (rows on the simplex, not one-hot) and steps the env
    with its argmax; gumbel_hard=True stores the one-hot Gumbel-max sample."""
    cfg = make_config(maddpg.Config, "maddpg", None, {"gumbel_hard": hard, "gumbel_temperature": 0.7})
    torch.manual_seed(1)
    logits = torch.randn(64, 3, 5).masked_fill(torch.tensor([True, True, True, True, False]).logical_not(), NEG)
    a, env_a = maddpg._discrete_sample(logits, cfg)
    assert a.shape == (64, 3, 5) and env_a.shape == (64, 3)
    assert torch.allclose(a.sum(-1), torch.ones(64, 3)) and bool((a[..., 4] == 0).all())
    assert torch.equal(a.argmax(-1), env_a)
    one_hot = bool(((a == 0) | (a == 1)).all())
    assert one_hot == hard
