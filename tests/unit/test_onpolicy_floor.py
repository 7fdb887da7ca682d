"""benchmarks/onpolicy_floor.py's whole-loop A2C floor is A2C: it learns CartPole (episodes get longer), stacked and
separate."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("stacked", [True, False])
def test_a2c_floor_loop_learns_cartpole(stacked, benchmark_script):
    out = benchmark_script("onpolicy_floor").a2c_loop(steps=100_000, seed=0, stacked=stacked)
    # a uniform policy ends CartPole episodes after about 22 steps: some 4,500 episodes in 100k steps
    assert out["sps"] > 0 and 0 < out["episodes"] < 1500
