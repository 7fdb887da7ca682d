"""Smoke: DPG, DDPG, TD3 and D4PG run a few hundred steps in-process (Box actions), save, load and act in bounds;
D4PG with 2 actor processes and with 2 Ray actors; Discrete actions are refused."""

from __future__ import annotations

import numpy as np
import pytest

import pgrad
from pgrad.errors import EnvError

SMALL = dict(hidden=(16, 16), batch_size=32, learning_starts=100)
CASES = [
    ("ddpg", SMALL), ("ddpg", {**SMALL, "noise": "ou", "batch_norm": True, "n_step": 3}),
    ("td3", SMALL), ("td3", {**SMALL, "n_step": 2, "n_critics": 3, "policy_delay": 3}),
    ("d4pg", {**SMALL, "chunk": 20}), ("d4pg", {**SMALL, "chunk": 20, "prioritized": False, "noise": "ou"}),
    ("dpg", {"hidden": (16,), "num_envs": 2}),
    ("dpg", {"hidden": (16,), "num_envs": 2, "form": "on_policy", "critic": "mlp", "policy": "mlp",
             "optimizer": "sgd"}),
]


def check_agent(agent, run_dir):
    res = agent.evaluate(episodes=2)
    assert len(res.returns) == 2 and np.isfinite(res.mean_return)
    obs = np.zeros(agent.spec.obs_dim, np.float32)
    a = agent.act(obs)
    assert a.shape == (1,) and -2.0 <= a[0] <= 2.0
    for f in ("config.yaml", "progress.csv", "evaluations.csv", "checkpoints/last.pt", "checkpoints/best.pt"):
        assert (run_dir / f).exists(), f
    assert np.array_equal(pgrad.load(run_dir).act(obs), a)


@pytest.mark.parametrize("algo,kw", CASES)
def test_runs_and_acts(algo, kw, tmp_path, quiet):
    agent = pgrad.train(algo, "Pendulum-v1", steps=400, eval_every=200, eval_episodes=2, out=tmp_path / "run",
                        **kw, **quiet)
    check_agent(agent, tmp_path / "run")


@pytest.mark.parametrize("algo", ["ddpg", "td3", "d4pg", "dpg"])
def test_discrete_actions_are_refused(algo, tmp_path, quiet):
    with pytest.raises(EnvError, match="Box"):
        pgrad.train(algo, "CartPole-v1", steps=10, out=tmp_path / "run", **quiet)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["process", "ray"])
def test_d4pg_with_two_actors(backend, tmp_path, quiet):
    if backend == "ray":
        pytest.importorskip("ray")
    agent = pgrad.train("d4pg", "Pendulum-v1", steps=600, eval_every=300, eval_episodes=2, out=tmp_path / "run",
                        actors=2, backend=backend, **SMALL, chunk=25, **quiet)
    check_agent(agent, tmp_path / "run")
