"""DPG family: same seed -> same run; N steps + resume -> the same weights as 2N steps straight (CPU, in-process)."""

from __future__ import annotations

import pytest
import torch

import pgrad
from pgrad.run import load_checkpoint

CASES = {
    "ddpg": dict(hidden=(16, 16), batch_size=32, learning_starts=150, noise="ou"),
    "td3": dict(hidden=(16, 16), batch_size=32, learning_starts=150, policy_delay=3),
    # β anneals over `steps`, which differs between the legs: held at 1 here
    "d4pg": dict(hidden=(16, 16), batch_size=32, learning_starts=150, chunk=25, n_step=3, beta=1.0),
    "dpg": dict(num_envs=2, form="on_policy", anneal_lr=False),  # the schedule spans `steps`: off here
}


@pytest.mark.parametrize("algo", list(CASES))
def test_resume_equals_straight_run(algo, tmp_path, quiet):
    kw = dict(eval_every=300, eval_episodes=2, seed=2, **CASES[algo], **quiet)
    n = 300
    pgrad.train(algo, "Pendulum-v1", out=tmp_path / "straight", steps=2 * n, **kw)
    pgrad.train(algo, "Pendulum-v1", out=tmp_path / "again", steps=2 * n, **kw)
    pgrad.train(algo, "Pendulum-v1", out=tmp_path / "resumed", steps=n, **kw)
    pgrad.train(algo, None, resume=tmp_path / "resumed", steps=2 * n, **quiet)
    a = load_checkpoint(tmp_path / "straight" / "checkpoints" / "last.pt")["nets"]
    b = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.pt")["nets"]
    c = load_checkpoint(tmp_path / "again" / "checkpoints" / "last.pt")["nets"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], c[k]), k
        assert torch.equal(a[k], b[k]), k
