"""TRPO, ACER and ACKTR: same seed -> same loss trace; N steps + resume to 2N == 2N straight (networks, the
averaged policy, optimiser and K-FAC factors, ACER's sequence replay and the RNG are all checkpointed)."""

from __future__ import annotations

import csv

import pytest
import torch

import pgrad
from pgrad.run import load_checkpoint

CASES = {
    "trpo": dict(num_envs=2, n_steps=64, vf_epochs=2, batch_size=64),
    # anneal_lr would make a 400-step run differ from an 800-step one: off here
    "acktr": dict(num_envs=2, n_steps=8, anneal_lr=False, eigen_every=3),
    "acer": dict(num_envs=2, n_steps=8, replay_start=64, buffer_size=240),
}
SMALL = dict(hidden=(16, 16), eval_episodes=2)


def losses(run_dir):
    with open(run_dir / "progress.csv") as f:
        return [r["loss/policy"] for r in csv.DictReader(f)]


def assert_same_state(a, b):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_same_state(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same_state(x, y)
    else:
        assert a == b


@pytest.mark.parametrize("algo", list(CASES))
def test_same_seed_same_loss_trace(algo, tmp_path, quiet):
    kw = dict(steps=640, log_every=64, eval_every=0, **CASES[algo], **SMALL, **quiet)
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        pgrad.train(algo, "CartPole-v1", out=tmp_path / name, seed=seed, **kw)
    assert losses(tmp_path / "a") == losses(tmp_path / "b")
    assert losses(tmp_path / "a") != losses(tmp_path / "c")


@pytest.mark.parametrize("algo", list(CASES))
def test_resume_equals_straight_run(algo, tmp_path, quiet):
    n = 256  # a whole number of updates for every case
    kw = dict(eval_every=128, **CASES[algo], **SMALL, **quiet)
    pgrad.train(algo, "CartPole-v1", out=tmp_path / "straight", steps=2 * n, seed=1, **kw)
    pgrad.train(algo, "CartPole-v1", out=tmp_path / "resumed", steps=n, seed=1, **kw)
    pgrad.train(algo, None, resume=tmp_path / "resumed", steps=2 * n, **quiet)
    a = load_checkpoint(tmp_path / "straight" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.pt")
    assert_same_state(a["nets"], b["nets"])
    assert_same_state(a["train"]["tracked"], b["train"]["tracked"])
