"""Smoke: actor_critic, off_policy_ac and a3c (Hogwild! workers) run a few hundred steps on each action space
they claim, in-process, and leave a complete run directory."""

from __future__ import annotations

import numpy as np
import pytest

import pgrad

CASES = [
    ("actor_critic", "CartPole-v1", {}), ("actor_critic", "CartPole-v1", {"baseline": True, "ent_coef": 0.01}),
    ("actor_critic", "Pendulum-v1", {"baseline": True}),
    ("off_policy_ac", "CartPole-v1", {}), ("off_policy_ac", "CartPole-v1", {"behaviour": "uniform", "rho_max": None}),
    ("off_policy_ac", "CartPole-v1", {"replay": True, "learning_starts": 100, "batch_size": 32, "tau": 0.05}),
    ("a3c", "CartPole-v1", {"workers": 2}), ("a3c", "Pendulum-v1", {"workers": 2, "optimizer": "adam"}),
]


@pytest.mark.parametrize("algo,env,kw", CASES)
def test_runs_and_acts(algo, env, kw, tmp_path, quiet):
    agent = pgrad.train(algo, env, steps=600, eval_every=300, eval_episodes=2, out=tmp_path / "run",
                        num_envs=2, **kw, **quiet)
    res = agent.evaluate(episodes=2)
    assert len(res.returns) == 2 and np.isfinite(res.mean_return)
    a = agent.act(np.zeros(agent.spec.obs_dim, np.float32))
    if env == "Pendulum-v1":
        assert a.shape == (1,) and -2.0 <= a[0] <= 2.0
    else:
        assert a in (0, 1)
    for f in ("config.yaml", "progress.csv", "evaluations.csv", "curve.png", "checkpoints/last.pt",
              "checkpoints/best.pt", "run.log"):
        assert (tmp_path / "run" / f).exists(), f
    assert pgrad.load(tmp_path / "run").act(np.zeros(agent.spec.obs_dim, np.float32)).shape == np.shape(a)


def test_off_policy_ac_refuses_box_actions(tmp_path, quiet):
    with pytest.raises(pgrad.EnvError, match="off_policy_ac does not support Box"):
        pgrad.train("off_policy_ac", "Pendulum-v1", steps=10, out=tmp_path / "run", **quiet)


def test_a3c_refuses_norm_obs(tmp_path, quiet):
    with pytest.raises(pgrad.ConfigError, match="norm_obs"):
        pgrad.train("a3c", "CartPole-v1", steps=10, norm_obs=True, out=tmp_path / "run", **quiet)
