"""Determinism and resume: same seed -> same loss trace; N steps + resume N steps == 2N steps straight (CPU)."""

from __future__ import annotations

import csv

import pytest
import torch

import pgrad
from pgrad.run import load_checkpoint

CASES = {
    # schedules that anneal over `steps` would differ between a 1280-step run and a 2560-step one: off here
    "ppo": dict(num_envs=4, n_steps=32, batch_size=64, epochs=2, anneal_lr=False, anneal_clip=False),
    "a2c": dict(num_envs=4, n_steps=5),
    "reinforce": dict(num_envs=2, baseline="value"),
}


def final_params(run_dir):
    return load_checkpoint(run_dir / "checkpoints" / "last.pt")["nets"]


def losses(run_dir):
    with open(run_dir / "progress.csv") as f:
        return [r["loss/policy"] for r in csv.DictReader(f)]


@pytest.mark.parametrize("algo", list(CASES))
def test_same_seed_same_loss_trace(algo, tmp_path, quiet):
    kw = dict(steps=2000, log_every=200, eval_every=1000, eval_episodes=2, **CASES[algo], **quiet)
    pgrad.train(algo, "CartPole-v1", out=tmp_path / "a", seed=3, **kw)
    pgrad.train(algo, "CartPole-v1", out=tmp_path / "b", seed=3, **kw)
    pgrad.train(algo, "CartPole-v1", out=tmp_path / "c", seed=4, **kw)
    assert losses(tmp_path / "a") == losses(tmp_path / "b")
    assert losses(tmp_path / "a") != losses(tmp_path / "c")


@pytest.mark.parametrize("algo", list(CASES))
def test_resume_equals_straight_run(algo, tmp_path, quiet):
    # the budget is a whole number of updates for ppo and a2c; REINFORCE's batches have random length, so its
    # first leg stops wherever it crosses N and both runs continue from there identically.
    kw = dict(eval_every=640, eval_episodes=2, **CASES[algo], **quiet)
    n = 1280
    pgrad.train(algo, "CartPole-v1", out=tmp_path / "straight", steps=2 * n, seed=1, **kw)
    pgrad.train(algo, "CartPole-v1", out=tmp_path / "resumed", steps=n, seed=1, **kw)
    pgrad.train(algo, None, resume=tmp_path / "resumed", steps=2 * n, **quiet)
    a, b = final_params(tmp_path / "straight"), final_params(tmp_path / "resumed")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
