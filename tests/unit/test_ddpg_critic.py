"""DDPG's paper critic (issue 20, point 11): action_layer=2 feeds a to Q at the second hidden layer, with batch
normalisation on every layer before it (Lillicrap et al. 2016, Sec. 7)."""

from __future__ import annotations

import pytest
import torch

import pgrad
from pgrad.algos import ddpg
from pgrad.errors import ConfigError


def test_action_joins_at_the_second_layer():
    torch.manual_seed(0)
    q = ddpg.PaperCritic(3, 2, (16, 8), "relu", batch_norm=True)
    assert q.first[0].in_features == 3  # s alone through W_1
    assert isinstance(q.norm, torch.nn.BatchNorm1d) and isinstance(q.norm_h, torch.nn.BatchNorm1d)
    s, a = torch.randn(32, 3), torch.randn(32, 2, requires_grad=True)
    h = q.norm_h(q.first(q.norm(s)))
    assert h.shape == (32, 16)
    out = q(s, a)
    assert out.shape == (32,)
    (g,) = torch.autograd.grad(out.sum(), a)
    assert g.abs().sum() > 0  # Q depends on a through the layers after the first
    assert q.q.q[0].in_features == 16 + 2  # [h, a] enters the second layer


def test_one_hidden_layer_is_refused():
    with pytest.raises(ConfigError, match="two hidden layers"):
        ddpg.PaperCritic(3, 2, (16,), "relu", batch_norm=False)


def test_trains_saves_and_loads(tmp_path):
    agent = pgrad.train("ddpg", "Pendulum-v1", steps=600, seed=0, action_layer=2, batch_norm=True,
                        learning_starts=200, hidden=[32, 32], eval_every=0, out=tmp_path / "run", progress=False)
    q = agent.nets["q"]
    assert isinstance(q, ddpg.PaperCritic)
    again = pgrad.load(tmp_path / "run")
    obs = torch.randn(4, 3)
    assert torch.allclose(torch.as_tensor(agent.act(obs.numpy(), deterministic=True)),
                          torch.as_tensor(again.act(obs.numpy(), deterministic=True)))
