"""Smoke: TRPO and ACKTR (Discrete and Box) and ACER (Discrete) run a few hundred steps, act, save and reload;
ACER refuses Box actions with a clear error."""

from __future__ import annotations

import csv

import numpy as np
import pytest

import pgrad
from pgrad.errors import EnvError

CASES = [
    ("trpo", {"n_steps": 64, "vf_epochs": 2, "batch_size": 32}, ("CartPole-v1", "Pendulum-v1")),
    ("acktr", {"n_steps": 8}, ("CartPole-v1", "Pendulum-v1")),
    ("acktr", {"n_steps": 8, "lam": 0.95, "max_grad_norm": 0.5, "eigen_every": 3}, ("CartPole-v1",)),
    ("acer", {"n_steps": 10, "replay_start": 40, "buffer_size": 200}, ("CartPole-v1",)),
    ("acer", {"n_steps": 10, "replay_start": 40, "trust_region": False, "replay_segments": 2}, ("CartPole-v1",)),
]


@pytest.mark.parametrize("algo,kw,env", [(a, k, e) for a, k, envs in CASES for e in envs])
def test_runs_and_acts(algo, kw, env, tmp_path, quiet):
    agent = pgrad.train(algo, env, steps=600, eval_every=300, eval_episodes=2, out=tmp_path / "run", num_envs=2,
                        hidden=(16, 16), **kw, **quiet)
    res = agent.evaluate(episodes=2)
    assert len(res.returns) == 2 and np.isfinite(res.mean_return)
    obs = np.zeros(agent.spec.obs_dim, np.float32)
    a = agent.act(obs)
    if env == "Pendulum-v1":
        assert a.shape == (1,) and -2.0 <= a[0] <= 2.0
    else:
        assert a in (0, 1)
    for f in ("config.yaml", "progress.csv", "evaluations.csv", "checkpoints/last.pt", "checkpoints/best.pt"):
        assert (tmp_path / "run" / f).exists(), f
    again = pgrad.load(tmp_path / "run")
    assert np.array_equal(again.act(obs), agent.act(obs))
    with open(tmp_path / "run" / "progress.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows and all(np.isfinite(float(r["loss/policy"])) for r in rows)


def test_trpo_steps_stay_in_the_trust_region(tmp_path, quiet):
    pgrad.train("trpo", "CartPole-v1", steps=1024, n_steps=128, num_envs=2, log_every=256, eval_every=0,
                eval_episodes=1, out=tmp_path / "run", **quiet)
    with open(tmp_path / "run" / "progress.csv") as f:
        rows = list(csv.DictReader(f))
    kls = [float(r["kl"]) for r in rows]
    assert all(0.0 <= kl <= 0.01 for kl in kls)
    assert any(float(r["ls_accepted"]) == 1.0 for r in rows)


def test_acer_refuses_box_actions(tmp_path):
    with pytest.raises(EnvError, match="acer does not support Box"):
        pgrad.train("acer", "Pendulum-v1", steps=10, out=tmp_path / "run", progress=False)
