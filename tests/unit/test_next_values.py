"""data.rollout.next_values: V(s_{t+1}) from V(s_t) and the few observations that are not the next row's."""

from __future__ import annotations

import numpy as np
import torch

import pgrad
from pgrad.data.rollout import next_values
from pgrad.envs import VecEnv, describe
from pgrad.envs.identity import ImageIdentityEnv


def test_next_values_equals_values_of_every_next_observation():
    torch.manual_seed(0)
    make = lambda: ImageIdentityEnv(4, 10, 1, "bool", length=5)  # noqa: E731  (episodes end inside the rollout)
    spec = describe(make(), "identity")
    envs = VecEnv(make, 3, 0, spec)
    ro = pgrad.data.rollout.Rollout(12, 3, spec)
    w = torch.randn(100)
    calls = []

    def value_fn(o):
        calls.append(o.shape[0] if o.dim() == 4 else o.shape[0] * o.shape[1])
        return (o.float().flatten(-3) * w).sum(-1)

    rng = np.random.default_rng(0)
    for t in range(12):
        obs = envs.obs
        step = envs.step(rng.integers(4, size=3))
        ro.store(t, obs, torch.zeros(3, dtype=torch.long), torch.zeros(3), step)
    assert ro.done.any() and not ro.done.all()
    v = value_fn(ro.obs)
    calls.clear()
    got = next_values(value_fn, ro, v)
    torch.testing.assert_close(got, value_fn(ro.next_obs))
    assert calls[0] == int(ro.done.sum()) + 3 - int(ro.done[-1].sum())  # the ended steps and the last row only
