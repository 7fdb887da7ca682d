"""SAC's entropy term lives in the squashed space (issue 20, point 1).

Pendulum with its torque bound scaled from ±2 to ±20 (the env divides the action by 10 before its dynamics, so the
optimal control is the same task) must learn the same way: log π(ã|s) and H̄ = -|A| are those of ã = tanh(u) in
(-1, 1), and the affine map to the bounds comes after. With the density in the env's units the scaled task's α
would chase an entropy lower by log 10, and its α trajectory would part from the unscaled one within a few hundred
updates.
"""

from __future__ import annotations

import csv

import gymnasium as gym
import numpy as np
import pytest

import pgrad


class ScaledTorque(gym.ActionWrapper):
    """Pendulum whose action Box is ``k`` times wider; the env divides by ``k`` before the dynamics."""

    def __init__(self, env: gym.Env, k: float):
        super().__init__(env)
        self.k = k
        box = env.action_space
        self.action_space = gym.spaces.Box(box.low * k, box.high * k, dtype=np.float32)

    def action(self, action: np.ndarray) -> np.ndarray:
        return np.asarray(action, np.float32) / self.k


def _alphas(k: float, tmp_path, version: str) -> np.ndarray:
    def make() -> gym.Env:
        return ScaledTorque(gym.make("Pendulum-v1"), k)

    pgrad.train("sac", make, steps=1200, seed=3, version=version, learning_starts=200, hidden=[32, 32],
                batch_size=64, lr=3e-3, log_every=100, eval_every=0, out=tmp_path / f"k{k}", progress=False,
                tensorboard=False)
    with open(tmp_path / f"k{k}" / "progress.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("alpha")]
    return np.array([float(r["alpha"]) for r in rows]), np.array([float(r["entropy"]) for r in rows])


@pytest.mark.parametrize("version", ["auto"])
def test_alpha_trajectory_does_not_depend_on_action_units(tmp_path, version):
    a1, h1 = _alphas(1.0, tmp_path, version)
    a10, h10 = _alphas(10.0, tmp_path, version)
    assert len(a1) >= 8 and len(a1) == len(a10)
    # α moved (the test would be empty otherwise) and the two runs moved it alike
    assert abs(np.log(a1[-1])) > 0.2
    assert np.allclose(np.log(a1), np.log(a10), atol=0.02), (a1, a10)
    assert np.allclose(h1, h10, atol=0.05), (h1, h10)
