"""Resume for the actor-critic family.

actor_critic and off_policy_ac: N steps + resume to 2N == 2N steps straight, bit for bit (their carried next
action, replay buffer, optimisers, env and RNG states are all in the checkpoint).
a3c: resume restores the shared parameters, the shared optimiser statistics and the counters, but workers restart
their episodes and random streams and the asynchronous order is not reproducible: not bit-exact (said in run.log).
"""

from __future__ import annotations

import csv

import pytest
import torch

import pgrad
from pgrad.run import load_checkpoint

CASES = {
    "actor_critic": dict(num_envs=4),
    "off_policy_ac": dict(num_envs=4),
    "off_policy_ac-replay": dict(num_envs=4, replay=True, learning_starts=200, batch_size=32, tau=0.05),
}


def final(run_dir):
    return load_checkpoint(run_dir / "checkpoints" / "last.pt")


@pytest.mark.parametrize("case", list(CASES))
def test_resume_equals_straight_run(case, tmp_path, quiet):
    algo = case.split("-")[0]
    kw = dict(eval_every=400, eval_episodes=2, **CASES[case], **quiet)
    n = 800
    pgrad.train(algo, "CartPole-v1", out=tmp_path / "straight", steps=2 * n, seed=1, **kw)
    pgrad.train(algo, "CartPole-v1", out=tmp_path / "resumed", steps=n, seed=1, **kw)
    pgrad.train(algo, None, resume=tmp_path / "resumed", steps=2 * n, **quiet)
    a, b = final(tmp_path / "straight")["nets"], final(tmp_path / "resumed")["nets"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("algo", ["actor_critic", "off_policy_ac"])
def test_same_seed_same_loss_trace(algo, tmp_path, quiet):
    kw = dict(steps=1200, log_every=200, eval_every=0, num_envs=2, **quiet)
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        pgrad.train(algo, "CartPole-v1", out=tmp_path / name, seed=seed, **kw)

    def trace(d):
        with open(tmp_path / d / "progress.csv") as f:
            return [r["loss/policy"] for r in csv.DictReader(f)]

    assert trace("a") == trace("b") != trace("c")


def test_a3c_resume_restores_shared_state(tmp_path, quiet):
    kw = dict(workers=2, eval_every=0, checkpoint_every=0, **quiet)
    pgrad.train("a3c", "CartPole-v1", out=tmp_path / "run", steps=1000, seed=2, **kw)
    first = final(tmp_path / "run")
    pgrad.train("a3c", None, resume=tmp_path / "run", steps=2000, **quiet)
    second = final(tmp_path / "run")
    c1, c2 = first["train"]["counters"], second["train"]["counters"]
    assert c1["step"] >= 1000 and c2["step"] >= 2000 and c2["updates"] > c1["updates"]
    # the optimiser statistics continued from the saved ones: RMSprop's step count kept growing
    s1 = first["train"]["tracked"]["opt"]["state"][0]["step"]
    s2 = second["train"]["tracked"]["opt"]["state"][0]["step"]
    assert float(s2) == c2["updates"] and float(s1) == c1["updates"]
    log = (tmp_path / "run" / "run.log").read_text()
    assert "resumed at step" in log and "not bit-exact" in log
