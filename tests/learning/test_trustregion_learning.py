"""BENCHMARKS.md CI rows for TRPO, ACER and ACKTR.

Each test trains with a fixed seed and asserts on the policy ``pgrad.train`` returns (the checkpoint of its best
periodic evaluation, checkpoints/best.pt) re-evaluated on 20 fresh episodes (seed 777, never used by the
periodic evaluations). Budgets and settings were checked on several seeds (see the note in each test; those
checks evaluated the same best.pt policy on 20 episodes of evaluation seed 12345).
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.learning


def test_trpo_cartpole(final_return):
    # rl-zoo preset (2 envs x 512 steps, cg_damping 1e-3, λ 0.98, 20 critic epochs); seeds 0, 1, 2, 3 all 500
    assert final_return("trpo", "CartPole-v1", 100_000, 0) >= 475


def test_trpo_pendulum(final_return):
    # preset (rl-zoo's 2 envs x 1024 steps, γ 0.9, 15 critic epochs, without gSDE); seeds 0, 1, 2: -196, -176, -171
    assert final_return("trpo", "Pendulum-v1", 150_000, 0) >= -250


def test_acer_cartpole(final_return):
    # defaults (4 envs x 20-step segments, replay ratio 4, c = 10, trust region δ = 1); seeds 0, 1, 2, 3 all 500
    assert final_return("acer", "CartPole-v1", 200_000, 0) >= 450


def test_acktr_cartpole(final_return):
    # defaults (8 envs x 20 steps, η 0.25 decayed linearly, KL clip 0.001); seeds 0, 1, 2, 3 all 500
    assert final_return("acktr", "CartPole-v1", 300_000, 0) >= 450
