"""SAC determinism and exact resume: same seed -> same loss trace; N steps + resume to 2N == 2N straight
(networks, target networks, optimiser incl. the temperature, replay buffer and RNG are all checkpointed)."""

from __future__ import annotations

import csv

import pytest
import torch

import pgrad
from pgrad.run import load_checkpoint

SMALL = dict(hidden=(16, 16), batch_size=32, learning_starts=100, num_envs=2, eval_episodes=2)


def losses(run_dir, key="loss/q"):
    with open(run_dir / "progress.csv") as f:
        return [r[key] for r in csv.DictReader(f)]


@pytest.mark.parametrize("version", ["auto", "2018"])
def test_sac_same_seed_same_loss_trace(version, tmp_path, quiet):
    kw = dict(steps=600, log_every=100, eval_every=0, version=version, **SMALL, **quiet)
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        pgrad.train("sac", "Pendulum-v1", out=tmp_path / name, seed=seed, **kw)
    assert losses(tmp_path / "a") == losses(tmp_path / "b")
    assert losses(tmp_path / "a") != losses(tmp_path / "c")


@pytest.mark.parametrize("version", ["auto", "2018"])
def test_sac_resume_equals_straight_run(version, tmp_path, quiet):
    n = 400  # the first leg ends after the random-action phase, with a partly filled replay buffer
    kw = dict(eval_every=n, version=version, **SMALL, **quiet)
    pgrad.train("sac", "Pendulum-v1", out=tmp_path / "straight", steps=2 * n, seed=1, **kw)
    pgrad.train("sac", "Pendulum-v1", out=tmp_path / "resumed", steps=n, seed=1, **kw)
    pgrad.train("sac", None, resume=tmp_path / "resumed", steps=2 * n, **quiet)
    a = load_checkpoint(tmp_path / "straight" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.pt")
    assert a["nets"].keys() == b["nets"].keys()
    assert any("targ" in k for k in a["nets"])
    for k in a["nets"]:
        assert torch.equal(a["nets"][k], b["nets"][k]), k
    opt_a, opt_b = a["train"]["tracked"]["opt"]["state"], b["train"]["tracked"]["opt"]["state"]
    for i in opt_a:
        for k in opt_a[i]:
            assert torch.equal(opt_a[i][k], opt_b[i][k]), (i, k)
    ra, rb = a["train"]["tracked"]["replay"], b["train"]["tracked"]["replay"]
    assert ra["pos"] == rb["pos"]
    for k in ra["fields"]:
        assert torch.equal(ra["fields"][k], rb["fields"][k]), k
