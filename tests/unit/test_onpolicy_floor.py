"""benchmarks/onpolicy_floor.py's whole-loop A2C floor is A2C: it learns CartPole (episodes get longer), stacked and
separate."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def _load():
    spec = importlib.util.spec_from_file_location("onpolicy_floor", ROOT / "benchmarks" / "onpolicy_floor.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("stacked", [True, False])
def test_a2c_floor_loop_learns_cartpole(stacked):
    torch.set_num_threads(1)
    out = _load().a2c_loop(steps=100_000, seed=0, stacked=stacked)
    # a uniform policy ends CartPole episodes after about 22 steps: some 4,500 episodes in 100k steps
    assert out["sps"] > 0 and 0 < out["episodes"] < 1500
