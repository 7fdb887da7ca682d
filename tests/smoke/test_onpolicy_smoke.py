"""Smoke: REINFORCE (both baselines), A2C and PPO run a few hundred steps on each action space, in-process."""

from __future__ import annotations

import numpy as np
import pytest

import pgrad

CASES = [
    ("reinforce", {}), ("reinforce", {"baseline": "value", "gamma_t": True}), ("a2c", {}),
    ("a2c", {"lam": 0.95, "optimizer": "adam"}), ("ppo", {"n_steps": 64, "batch_size": 32, "epochs": 2}),
    ("ppo", {"n_steps": 64, "batch_size": 32, "epochs": 2, "target_kl": 0.01, "vf_clip": 0.2, "norm_obs": True,
             "norm_reward": True}),
]


@pytest.mark.parametrize("env", ["CartPole-v1", "Pendulum-v1"])
@pytest.mark.parametrize("algo,kw", CASES)
def test_runs_and_acts(algo, kw, env, tmp_path, quiet):
    agent = pgrad.train(algo, env, steps=600, eval_every=300, eval_episodes=2, out=tmp_path / "run",
                        num_envs=2, **kw, **quiet)
    res = agent.evaluate(episodes=2)
    assert len(res.returns) == 2 and np.isfinite(res.mean_return)
    obs = np.zeros(agent.spec.obs_dim, np.float32)
    a = agent.act(obs)
    if env == "Pendulum-v1":
        assert a.shape == (1,) and -2.0 <= a[0] <= 2.0
    else:
        assert a in (0, 1)
    for f in ("config.yaml", "progress.csv", "evaluations.csv", "curve.png", "checkpoints/last.pt",
              "checkpoints/best.pt", "run.log"):
        assert (tmp_path / "run" / f).exists(), f
    again = pgrad.load(tmp_path / "run")
    assert np.array_equal(again.act(obs), agent.act(obs))
