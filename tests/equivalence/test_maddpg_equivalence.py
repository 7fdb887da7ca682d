"""MADDPG equivalences: with one agent it is DDPG (the same update from the same weights and minibatches), and
runs are repeatable (same seed, same loss trace; N steps + resume N steps equals 2N steps straight)."""

from __future__ import annotations

import csv

import pytest
import torch

import pgrad
from pgrad.algos import ddpg, maddpg
from pgrad.config import make_config
from pgrad.envs import EnvSpec, MultiAgentSpec
from pgrad.run import load_checkpoint


def copy_mlp_into_member(seq: torch.nn.Sequential, stacked, m: int = 0) -> None:
    lins = [layer for layer in seq if isinstance(layer, torch.nn.Linear)]
    with torch.no_grad():
        for i, lin in enumerate(lins):
            stacked.weights[i][m].copy_(lin.weight.T)
            stacked.biases[i][m, 0].copy_(lin.bias)


def assert_same(seq: torch.nn.Sequential, stacked, what: str) -> None:
    mine = stacked.member(0).state_dict()
    theirs = {k: v for k, v in seq.state_dict().items()}
    assert mine.keys() == theirs.keys()
    for k in mine:
        assert torch.allclose(mine[k], theirs[k], atol=1e-6, rtol=1e-5), (what, k)


def test_one_agent_maddpg_is_ddpg():
    """Same weights, same minibatches -> the same critic, actor and target parameters after every update."""
    torch.manual_seed(0)
    hp = dict(hidden=(32, 32), lr=1e-3, critic_lr=2e-3, gamma=0.97, tau=0.05)
    spec = EnvSpec("one", 3, "box", 0, "box", 2, act_low=torch.tensor([-2.0, 0.0]).numpy(),
                   act_high=torch.tensor([2.0, 1.0]).numpy())
    mspec = MultiAgentSpec("one", ["agent"], [3], ["box"], "box", [2], [[-2.0, 0.0]], [[2.0, 1.0]])
    dcfg = make_config(ddpg.Config, "ddpg", None, hp)
    mcfg = make_config(maddpg.Config, "maddpg", None, dict(hp, max_grad_norm=None, logit_reg=0.0))
    dn, dopt = ddpg.build(dcfg, spec)
    mn, mopt = maddpg.build(mcfg, mspec)
    with torch.no_grad():  # targets that differ from the online networks, as after some training
        for p in list(dn["mu_targ"].parameters()) + list(dn["q_targ"].parameters()):
            p.add_(0.05 * torch.randn_like(p))
    pairs = [(dn["mu"].mu, "mu"), (dn["q"].q.q, "q"), (dn["mu_targ"].mu, "mu_targ"), (dn["q_targ"].q.q, "q_targ")]
    for seq, name in pairs:
        copy_mlp_into_member(seq, mn[name])
    g = torch.Generator().manual_seed(1)
    B = 64
    for _ in range(5):
        obs, nxt = torch.randn(B, 3, generator=g), torch.randn(B, 3, generator=g)
        act, rew = torch.rand(B, 2, generator=g) * 2 - 1, torch.randn(B, generator=g)
        term = torch.rand(B, generator=g) < 0.1
        db = {"obs": obs, "actions": act, "rewards": rew, "next_obs": nxt, "discount": 0.97 * (~term).float()}
        mb = {"obs": obs.view(1, B, 1, 3), "actions": act.view(1, B, 1, 2), "rewards": rew.view(1, B, 1),
              "next_obs": nxt.view(1, B, 1, 3), "agent_term": term.view(1, B, 1),
              "acted": torch.ones(1, B, 1, dtype=torch.bool), "k": torch.zeros(1, B, 1, dtype=torch.long)}
        dm = ddpg.update(dn, dopt, db, dcfg)
        mm = maddpg.update(mn, mopt, mb, mcfg)
        assert torch.allclose(dm["loss/critic"], mm["loss/critic"], atol=1e-6, rtol=1e-5)
        assert torch.allclose(dm["loss/actor"], mm["loss/actor"], atol=1e-6, rtol=1e-5)
        for seq, name in pairs:
            assert_same(seq, mn[name], name)
    obs = torch.randn(7, 3, generator=g)
    with torch.no_grad():
        assert torch.allclose(torch.as_tensor(ddpg.act(dn, obs, True)),
                              torch.as_tensor(maddpg.act(mn, obs.view(7, 1, 3), True)).view(7, 2), atol=1e-6)


SL = "mpe2:simple_speaker_listener_v4"
KW = dict(learning_starts=200, batch_size=32, update_every=20, hidden=(16, 16), num_envs=2, eval_episodes=2,
          ensemble=2, infer_policies=True, infer_window=200, log_every=100)


def losses(run_dir):
    with open(run_dir / "progress.csv") as f:
        return [r["loss/critic"] for r in csv.DictReader(f)]


def test_same_seed_same_loss_trace(tmp_path, quiet):
    kw = dict(steps=800, eval_every=400, **KW, **quiet)
    pgrad.train("maddpg", SL, out=tmp_path / "a", seed=3, **kw)
    pgrad.train("maddpg", SL, out=tmp_path / "b", seed=3, **kw)
    pgrad.train("maddpg", SL, out=tmp_path / "c", seed=4, **kw)
    assert losses(tmp_path / "a") == losses(tmp_path / "b")
    assert losses(tmp_path / "a") != losses(tmp_path / "c")


@pytest.mark.parametrize("n", [500, 510])  # a resume at an episode boundary and one mid-episode (25-step episodes)
def test_resume_equals_straight_run(n, tmp_path, quiet):
    kw = dict(eval_every=250, **KW, **quiet)
    pgrad.train("maddpg", SL, out=tmp_path / "straight", steps=2 * n, seed=1, **kw)
    pgrad.train("maddpg", SL, out=tmp_path / "resumed", steps=n, seed=1, **kw)
    pgrad.train("maddpg", None, resume=tmp_path / "resumed", steps=2 * n, **quiet)
    a = load_checkpoint(tmp_path / "straight" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.pt")
    assert a["nets"].keys() == b["nets"].keys()
    for k in a["nets"]:
        assert torch.equal(a["nets"][k], b["nets"][k]), k
    assert losses(tmp_path / "straight")[-1] == losses(tmp_path / "resumed")[-1]
