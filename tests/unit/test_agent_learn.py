"""Agent.learn continues a run in process exactly as --resume would (issue 21, point 3)."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch

import pgrad
from pgrad.errors import CheckpointError, ConfigError

KW = {"num_envs": 2, "n_steps": 64, "batch_size": 64, "hidden": [16], "eval_every": 0, "checkpoint_every": 0,
      "progress": False, "select": "last", "anneal_lr": False, "anneal_clip": False}  # no schedules over `steps`


def _params(agent):
    return torch.cat([p.detach().flatten() for p in agent.nets.parameters()])


@pytest.mark.parametrize("env", ["CartPole-v1", "factory"])
def test_learn_equals_one_longer_run(env, tmp_path):
    make = env if env != "factory" else (lambda: gym.make("CartPole-v1"))
    straight = pgrad.train("ppo", make, steps=1024, seed=3, out=tmp_path / "straight", **KW)
    agent = pgrad.train("ppo", make, steps=512, seed=3, out=tmp_path / "split", **KW)
    same = agent.learn(512)
    assert same is agent and agent.steps_trained == straight.steps_trained == 1024
    assert torch.equal(_params(agent), _params(straight))
    again = pgrad.load(tmp_path / "split")  # a loaded agent continues from the run's last checkpoint too
    again.learn(256)
    assert again.steps_trained == 1280


def test_learn_needs_a_run_and_a_positive_count(tmp_path):
    agent = pgrad.train("ppo", "CartPole-v1", steps=128, seed=0, out=tmp_path / "run", **KW)
    with pytest.raises(ConfigError, match="integer >= 1"):
        agent.learn(0)
    policy = pgrad.load(agent.save(tmp_path / "policy.pt"))
    with pytest.raises(CheckpointError, match="no run directory"):
        policy.learn(100)


def test_the_learn_example_of_docs_customise_runs(tmp_path, customise_examples):
    blocks, run = customise_examples
    (code,) = blocks("Training more in the same process")
    assert int(run(code, tmp_path).stdout.split()[-1]) >= 8000
