"""Smoke: SAC (both versions) runs a few hundred steps on Box envs, acts within the bounds, saves and reloads;
Discrete actions are refused with a clear error."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import pgrad
from pgrad.errors import EnvError

SMALL = dict(hidden=(16, 16), batch_size=32, learning_starts=50, eval_every=300, eval_episodes=2)


@pytest.mark.parametrize("version", ["auto", "2018"])
def test_sac_runs_and_acts_pendulum(version, tmp_path, quiet):
    agent = pgrad.train("sac", "Pendulum-v1", steps=400, version=version, out=tmp_path / "run", num_envs=2,
                        **SMALL, **quiet)
    res = agent.evaluate(episodes=2)
    assert len(res.returns) == 2 and np.isfinite(res.mean_return)
    obs = np.zeros(agent.spec.obs_dim, np.float32)
    a = agent.act(obs)
    assert a.shape == (1,) and -2.0 <= a[0] <= 2.0
    stochastic = agent.act(np.zeros((64, 3), np.float32), deterministic=False)
    assert stochastic.shape == (64, 1) and (np.abs(stochastic) <= 2.0).all() and stochastic.std() > 0
    for f in ("config.yaml", "progress.csv", "evaluations.csv", "curve.png", "checkpoints/last.pt",
              "checkpoints/best.pt", "run.log"):
        assert (tmp_path / "run" / f).exists(), f
    again = pgrad.load(tmp_path / "run")
    assert np.array_equal(again.act(obs), agent.act(obs))
    with open(tmp_path / "run" / "progress.csv") as f:
        header = f.readline()
    assert "loss/q" in header and "loss/policy" in header and ("loss/v" in header) == (version == "2018")


def test_sac_asymmetric_bounds_multi_dim(tmp_path, quiet):
    """Actions land in an asymmetric Box [low, high] of several dimensions."""
    low, high = np.array([-3.0, 0.0, 10.0], np.float32), np.array([1.0, 0.5, 12.0], np.float32)

    def make():
        env = gym.make("Pendulum-v1")
        return gym.wrappers.TransformAction(
            env, lambda a: np.clip(a[:1] - a[1:2] - a[2:] + 11.0, -2, 2), gym.spaces.Box(low, high))

    agent = pgrad.train("sac", make, steps=300, out=tmp_path / "run", **SMALL, **quiet)
    acts = agent.act(np.random.default_rng(0).normal(size=(100, 3)).astype(np.float32), deterministic=False)
    assert acts.shape == (100, 3)
    assert (acts >= low).all() and (acts <= high).all()


def test_sac_refuses_discrete_actions(tmp_path, quiet):
    with pytest.raises(EnvError, match="Box"):
        pgrad.train("sac", "CartPole-v1", steps=100, out=tmp_path / "run", **quiet)
